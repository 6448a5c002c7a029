"""The callback dialer: a due callback agreement rings its operator, then the customer.

``policy`` decides, purely, when the next attempt of an agreement may be dialled and who
may be rung for it (calling hours and holidays in the customer's time zone, the
customer's window, retry intervals, maximum attempts, owner first). The attempt machine,
the service on the reactor and the wiring (``install(node)``) come next; until then the
daemon does not install this room. See docs/dialer.md.
"""
