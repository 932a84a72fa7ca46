"""The roadbike CrossGuard policy pack: plain policy objects in domain modules.

`PolicyPack(...)` is built only in `__main__.py`: it starts a gRPC server and blocks.
"""
