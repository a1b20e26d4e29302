"""One base for the errors hocba reports to a person.

Every error a user can meet (a refused transition, a bad Excel cell, a signing service
that said no...) derives from :class:`HocbaError`, so the CLI, the dashboard and the flows
catch one type and show ``message``: Vietnamese, saying what is wrong and what to do.
The standard bases (``ValueError``...) stay where callers catch them.
"""

from __future__ import annotations


class HocbaError(Exception):
    """An error with a message for a person (Vietnamese, with what to do next).

    ``message`` is the first argument unless a subclass sets it.
    """

    @property
    def message(self) -> str:
        own = self.__dict__.get("_message")
        if own is not None:
            return own
        return str(self.args[0]) if self.args else ""

    @message.setter
    def message(self, value: str) -> None:
        self.__dict__["_message"] = value
