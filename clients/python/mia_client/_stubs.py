"""Finds the generated gRPC stubs of mia.v1 (audit_pb2, audit_pb2_grpc).

The stubs are generated from proto/mia/v1/audit.proto, never committed. In
order, this module tries:

1. ``import mia.v1.audit_pb2`` as it is (stubs already on ``sys.path``);
2. the folder named by the environment variable ``MIA_PROTO_PYTHON`` (the
   build puts them in ``build/proto/python``);
3. generating them with Debian's ``protoc`` and ``grpc_python_plugin`` from
   the ``proto/`` folder of the source checkout this package sits in, into
   ``$XDG_CACHE_HOME/mia_client/<hash of the .proto>``.
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys


def _try_import():
    try:
        pb2 = importlib.import_module("mia.v1.audit_pb2")
        grpc_mod = importlib.import_module("mia.v1.audit_pb2_grpc")
        return pb2, grpc_mod
    except ImportError:
        return None


def _add_path(path):
    if path and os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
        importlib.invalidate_caches()
        for name in [m for m in sys.modules if m == "mia" or m.startswith("mia.")]:
            del sys.modules[name]


def _generate():
    here = os.path.dirname(os.path.abspath(__file__))
    proto_root = os.path.normpath(os.path.join(here, "..", "..", "..", "proto"))
    proto = os.path.join(proto_root, "mia", "v1", "audit.proto")
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if not (os.path.isfile(proto) and protoc and plugin):
        return None
    with open(proto, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out = os.path.join(cache, "mia_client", digest)
    if not os.path.isfile(os.path.join(out, "mia", "v1", "audit_pb2_grpc.py")):
        tmp = out + ".tmp%d" % os.getpid()
        os.makedirs(tmp, exist_ok=True)
        subprocess.run(
            [protoc, "--proto_path=" + proto_root, "--python_out=" + tmp, "--grpc_out=" + tmp,
             "--plugin=protoc-gen-grpc=" + plugin, "mia/v1/audit.proto"],
            check=True)
        try:
            os.rename(tmp, out)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load():
    """Returns (audit_pb2, audit_pb2_grpc) or raises ImportError saying how to get them."""
    found = _try_import()
    if found:
        return found
    _add_path(os.environ.get("MIA_PROTO_PYTHON"))
    found = _try_import()
    if found:
        return found
    _add_path(_generate())
    found = _try_import()
    if found:
        return found
    raise ImportError(
        "mia_client needs the generated stubs of proto/mia/v1/audit.proto: build mia (they go "
        "to build/proto/python) and set MIA_PROTO_PYTHON to that folder, or install "
        "protobuf-compiler and protobuf-compiler-grpc so that mia_client generates them")
