"""A client of the mia audit service (proto/mia/v1/audit.proto) over Debian's
python3-grpcio: submit, watch, results as dicts, scores as numpy arrays,
report files. See clients/python/README.md."""

import hashlib
import os
import time

import grpc

from . import _stubs
from .spec import spec_from_dict

_CHUNK = 1 << 20  # the API's largest upload chunk
_FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class MiaError(Exception):
    """A call that failed: `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, code, details):
        self.code = code
        self.details = details
        super().__init__("%s: %s" % (code.name if code else "ERROR", details))


def to_dict(msg):
    """A message as a plain dict: every field present (None for an unset
    message or optional field), enums by name, timestamps as datetime."""
    from google.protobuf.message import Message
    out = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            out[f.name] = {k: (to_dict(x) if isinstance(x, Message) else x) for k, x in v.items()}
        elif f.label == f.LABEL_REPEATED:
            out[f.name] = [to_dict(x) if f.message_type is not None else x for x in v]
        elif f.message_type is not None:
            if not msg.HasField(f.name):
                out[f.name] = None
            elif f.message_type.full_name == "google.protobuf.Timestamp":
                out[f.name] = v.ToDatetime()
            else:
                out[f.name] = to_dict(v)
        else:
            try:
                present = msg.HasField(f.name)  # optional fields and oneof members
            except ValueError:
                present = True
            if not present:
                out[f.name] = None
            elif f.enum_type is not None:
                out[f.name] = f.enum_type.values_by_number[v].name
            else:
                out[f.name] = v
    return out


class Client:
    """One connection to a mia server. Not for sharing between threads while a
    watch iterator is open; open one Client per thread instead.

    `address` is "host:port". TLS is on when `tls` is true or any of
    `root_cert`, `client_cert` (with `client_key`) is given: PEM file paths;
    without `root_cert` the system's roots verify the server. `server_name`
    overrides the name the server's certificate must carry. `token` is sent
    on every call as "authorization: Bearer <token>". `timeout` (seconds)
    bounds each unary call.
    """

    def __init__(self, address, *, tls=False, root_cert=None, client_cert=None, client_key=None,
                 server_name=None, token=None, timeout=60.0):
        self.pb2, grpc_mod = _stubs.load()
        self.timeout = timeout
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        if bool(client_cert) != bool(client_key):
            raise ValueError("client_cert and client_key go together")
        if tls or root_cert or client_cert:
            def read(path):
                with open(path, "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(
                root_certificates=read(root_cert) if root_cert else None,
                private_key=read(client_key) if client_key else None,
                certificate_chain=read(client_cert) if client_cert else None)
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = grpc_mod.AuditServiceStub(self._channel)

    @classmethod
    def connect(cls, address, **kwargs):
        """Client(address, ...) that waits until the channel is ready (at most
        `timeout` seconds) so that a wrong address fails here."""
        client = cls(address, **kwargs)
        try:
            grpc.channel_ready_future(client._channel).result(timeout=client.timeout)
        except grpc.FutureTimeoutError:
            client.close()
            raise MiaError(grpc.StatusCode.UNAVAILABLE,
                           "cannot reach the mia server at %s" % address) from None
        return client

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- calls ------------------------------------------------------------

    def _call(self, method, request, stream=False):
        try:
            if stream:
                return method(request, metadata=self._metadata)
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise MiaError(e.code(), e.details()) from None

    @staticmethod
    def _name(name):
        return name if name.startswith("audits/") else "audits/" + name

    def upload(self, path):
        """Uploads a local file; returns its artifact id (reference it as
        "artifact:ID")."""
        size = os.path.getsize(path)
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                sha.update(block)
        pb2 = self.pb2

        def requests():
            yield pb2.UploadArtifactRequest(header=pb2.ArtifactHeader(
                filename=os.path.basename(path), size=size, sha256=sha.hexdigest()))
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_CHUNK), b""):
                    yield pb2.UploadArtifactRequest(chunk=block)

        artifact = self._call(self._stub.UploadArtifact, requests())
        return artifact.artifact_id

    def submit(self, spec, *, request_id="", labels=None, priority=0):
        """Creates an audit from `spec`: a dict with the YAML's keys, the path
        of a YAML file (needs python3-yaml), or an AuditSpec message. Files
        given as "upload:FILE" are uploaded first. Returns the audit's name
        ("audits/ID")."""
        pb2 = self.pb2
        if isinstance(spec, pb2.AuditSpec):
            message = spec
        else:
            if isinstance(spec, (str, os.PathLike)):
                import yaml  # python3-yaml
                with open(spec, encoding="utf-8") as f:
                    spec = yaml.safe_load(f)
            message, uploads, _ = spec_from_dict(pb2, spec)
            for _, local, ref in uploads:
                ref.artifact_id = self.upload(local)
        request = pb2.CreateAuditRequest(spec=message, request_id=request_id,
                                         labels=labels or {}, priority=priority)
        return self._call(self._stub.CreateAudit, request).name

    def get(self, name):
        """The audit as a dict (state, progress, result, error, ...)."""
        request = self.pb2.GetAuditRequest(name=self._name(name), view=self.pb2.AUDIT_VIEW_FULL)
        return to_dict(self._call(self._stub.GetAudit, request))

    def list(self):
        """Every audit the caller may see (its tenant's, on a server with
        authentication), oldest first, as dicts without results."""
        audits, token = [], ""
        while True:
            page = self._call(self._stub.ListAudits, self.pb2.ListAuditsRequest(
                page_token=token, view=self.pb2.AUDIT_VIEW_BASIC))
            audits.extend(to_dict(a) for a in page.audits)
            token = page.next_page_token
            if not token:
                return audits

    def watch(self, name, *, from_version=0, reconnect_timeout=300.0):
        """Yields the audit (a dict, as get) each time it changes, until it
        ends (SUCCEEDED, FAILED or CANCELLED; the last item). A broken stream
        is resumed from the last version seen for up to `reconnect_timeout`
        seconds without progress."""
        name = self._name(name)
        version = from_version
        last_progress = time.monotonic()
        while True:
            request = self.pb2.WatchAuditRequest(name=name, from_version=version)
            try:
                for event in self._call(self._stub.WatchAudit, request, stream=True):
                    if not event.HasField("snapshot"):
                        continue
                    snapshot = to_dict(event.snapshot)
                    version = max(version, event.snapshot.version)
                    last_progress = time.monotonic()
                    yield snapshot
                    if snapshot["state"] in _FINAL:
                        return
                return  # the stream ended after a final snapshot seen earlier
            except grpc.RpcError as e:
                retry = e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
                if not retry or time.monotonic() - last_progress > reconnect_timeout:
                    raise MiaError(e.code(), e.details()) from None
                time.sleep(1.0)

    def wait(self, name, **kwargs):
        """Watches until the audit ends; returns its last snapshot (a dict)."""
        last = None
        for last in self.watch(name, **kwargs):
            pass
        return last

    def result(self, name):
        """The result of a SUCCEEDED audit as a dict (the API's AuditResult:
        results per attack and target, summaries, and `policy` with the
        verdict when the spec had one). MiaError with FAILED_PRECONDITION
        when it has not succeeded."""
        audit = self.get(name)
        if audit["state"] != "SUCCEEDED":
            raise MiaError(grpc.StatusCode.FAILED_PRECONDITION,
                           "%s is %s, not SUCCEEDED" % (audit["name"], audit["state"]))
        return audit["result"]

    def scores(self, name, *, target=None, page_size=0):
        """Per-example scores as numpy arrays: {"attacks": [names],
        "row_id": int64[n], "target": int32[n], "member": bool[n],
        "scores": float64[n, attacks]} (NaN where an attack excluded a point)."""
        import numpy as np
        pb2 = self.pb2
        attacks, row_id, tgt, member, scores = [], [], [], [], []
        token = ""
        while True:
            request = pb2.ListAuditScoresRequest(name=self._name(name), page_size=page_size,
                                                 page_token=token)
            if target is not None:
                request.target = target
            page = self._call(self._stub.ListAuditScores, request)
            if not attacks:
                attacks = list(page.attacks)
            for r in page.rows:
                row_id.append(r.row_id)
                tgt.append(r.target)
                member.append(r.member)
                scores.append(list(r.scores))
            token = page.next_page_token
            if not token:
                break
        return {
            "attacks": attacks,
            "row_id": np.asarray(row_id, dtype=np.int64),
            "target": np.asarray(tgt, dtype=np.int32),
            "member": np.asarray(member, dtype=bool),
            "scores": np.asarray(scores, dtype=np.float64).reshape(len(scores), len(attacks)),
        }

    def download_report(self, name, folder):
        """Downloads every report file of a SUCCEEDED audit into `folder`
        (created if missing), each checked against its SHA-256; returns the
        paths written. MiaError (NOT_FOUND) when the server lost some."""
        pb2 = self.pb2
        name = self._name(name)
        listing = self._call(self._stub.ListReportFiles, pb2.ListReportFilesRequest(name=name))
        os.makedirs(folder, exist_ok=True)
        written = []
        for file in listing.files:
            if os.path.basename(file.file) != file.file or file.file.startswith("."):
                raise MiaError(None, "the server listed a file name that is not a plain name")
            path = os.path.join(folder, file.file)
            tmp = path + ".part"
            sha = hashlib.sha256()
            server_sha = ""
            try:
                with open(tmp, "wb") as out:
                    for chunk in self._call(self._stub.GetReportFile,
                                            pb2.GetReportFileRequest(name=name, file=file.file),
                                            stream=True):
                        out.write(chunk.data)
                        sha.update(chunk.data)
                        if chunk.sha256:
                            server_sha = chunk.sha256
            except grpc.RpcError as e:
                os.remove(tmp)
                raise MiaError(e.code(), e.details()) from None
            expected = server_sha or file.sha256
            if sha.hexdigest() != expected:
                os.remove(tmp)
                raise MiaError(None, "report file %s: checksum mismatch; not written" % file.file)
            os.replace(tmp, path)
            written.append(path)
        if listing.missing_files:
            raise MiaError(grpc.StatusCode.NOT_FOUND, "report %s is incomplete: the server lost %s"
                           % (name, ", ".join(listing.missing_files)))
        return written

    def cancel(self, name):
        """Requests cancellation; returns the audit as a dict."""
        return to_dict(self._call(self._stub.CancelAudit,
                                  self.pb2.CancelAuditRequest(name=self._name(name))))
