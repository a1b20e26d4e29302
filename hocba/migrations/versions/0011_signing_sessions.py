"""Signing sessions: a batch a person started from the dashboard, signed by a Prefect flow.

A row says who signs which records in which slot with which registered certificate and
backend (``remote``: a remote signing service, confirmed on the phone; ``pkcs11``: a USB
token behind the local signing agent ``hocba agent``), where the batch stands
(``queued`` → ``running`` → ``waiting_confirmation`` / ``waiting_agent`` → ``done`` |
``failed``), a Vietnamese message for the person, and each record's outcome. The flow
run gets only the session id; no PIN, OTP or passphrase is ever stored here.

For the token agent the row also carries the batch of SHA-256 digests to sign and, once
the agent has signed them, the signature values (base64); both are cleared at the end.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE signing_session (
    id serial PRIMARY KEY,
    staff_id integer NOT NULL REFERENCES staff(id),
    school_id integer NOT NULL REFERENCES school(id),
    slot text NOT NULL CHECK (slot IN ('GVCN', 'CBQL', 'KY_PHAT_HANH')),
    certificate_id integer NOT NULL REFERENCES certificate(id),
    backend text NOT NULL CHECK (backend IN ('remote', 'pkcs11')),
    record_ids integer[] NOT NULL CHECK (cardinality(record_ids) > 0),
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running',
        'waiting_confirmation', 'waiting_agent', 'done', 'failed')),
    message text,
    results jsonb NOT NULL DEFAULT '{}'::jsonb,
    flow_run_id text,
    remote_request_id text,
    digests jsonb,
    signatures jsonb,
    agent_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    wait_until timestamptz
);
CREATE INDEX signing_session_staff ON signing_session (staff_id, created_at DESC);
CREATE INDEX signing_session_waiting ON signing_session (staff_id)
    WHERE state = 'waiting_agent';
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP TABLE signing_session")
