"""The login rule auth decides with and audit explains with: one copy, no I/O.

What auth knows of other services' aggregates (`projected`), how their events are taken in
order (`gapless`), the decision itself (`login_requirement`), and the decision folded from
a stored history (`history`).
"""
