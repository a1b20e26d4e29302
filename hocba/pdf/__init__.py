"""The paper copy: rendering, PAdES signatures, printing a class."""
