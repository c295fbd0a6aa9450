"""A gokart-style pipeline written once, run by gokart 1.12.2 or kart_core (see ``impl``).

Only ``impl``, the task modules and ``driver`` live here; the tests run the driver in a
subprocess per implementation, because both register luigi task classes with the same names.
"""
