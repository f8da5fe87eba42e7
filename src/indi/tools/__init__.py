"""Command-line tools compatible with INDI's indi_getprop, indi_setprop and indi_eval.

Each is a module with a ``main()`` (installed as a console script of the same name); they talk to
the server over plain sockets with the sans-I/O protocol package, and reproduce the output, the
messages and the exit statuses of Debian's indi-bin 1.9.9 tools so that scripts written for those
work unchanged.
"""
