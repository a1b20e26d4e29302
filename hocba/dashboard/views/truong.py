"""Trường: one school's progress per class, who holds what, the August cohort."""

import streamlit as st

from hocba.dashboard.auth import require
from hocba.dashboard.common import pick_school, pick_year
from hocba.dashboard.school_view import render_school

viewer = require("principal", "vice_principal", "clerk", "district_officer")
st.title("Trường")
year = pick_year(key="truong_year")
school = pick_school(viewer, key="truong_school") if year else None
if year and school is None:
    st.info("Bạn không được phân công ở trường nào.")
elif year and school:
    st.caption(f"{school['name']} — năm học {year['name']}")
    render_school(viewer, year, school)
