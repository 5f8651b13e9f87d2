"""An audit spec given as a dict (the keys of the YAML of `mia audit` and
`mia submit`, docs/config.md and docs/service.md) turned into an AuditSpec.

The mapping is the one `mia submit` uses (client/spec_from_yaml.cc): the proto
mirrors the YAML key for key, except ``bundle`` (the signals_bundle field) and
its ``path`` (the bundle field); file references are strings (a path on the
server, ``artifact:SHA256``, or ``upload:FILE`` for a local file uploaded
first); ``train.hidden`` is a list; a scalar where a list is expected is a list
of one; ``run.log_dir`` and ``audit.report_log`` (where `mia audit` writes
locally) are left out. Every problem is collected and raised at once, naming
its key path. The values themselves are checked by the server, which runs the
same validator as `mia audit`.
"""

_RENAMES = {
    "mia.v1.AuditSpec": {"bundle": "signals_bundle"},
    "mia.v1.SignalsBundleInput": {"path": "bundle"},
}
_LOCAL_ONLY = {
    "mia.v1.RunSection": {"log_dir"},
    "mia.v1.AuditSection": {"report_log"},
}


class SpecError(ValueError):
    """A spec that does not map onto the API; `problems` lists each one."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _is_scalar(v):
    return isinstance(v, (str, int, float, bool))


class _Converter:
    def __init__(self, pb2):
        self.pb2 = pb2
        self.problems = []
        self.uploads = []  # (key path, local file, DataRef message to fill)
        self.notes = []

    def section(self, value, path, msg):
        if value is None:
            return
        if not isinstance(value, dict):
            self.problems.append("%s: must be a mapping of keys" % (path or "(top level)"))
            return
        d = msg.DESCRIPTOR
        renames = _RENAMES.get(d.full_name, {})
        for key, v in value.items():
            if not isinstance(key, str):
                self.problems.append("%s: keys must be plain names" % (path or "(top level)"))
                continue
            key_path = key if not path else path + "." + key
            if key in _LOCAL_ONLY.get(d.full_name, ()):
                self.notes.append(
                    "%s is where `mia audit` writes locally; the server chooses: left out" % key_path)
                continue
            name = renames.get(key, key)
            if key not in renames and key in renames.values():
                name = None  # a renamed field is reachable only by its YAML name
            f = d.fields_by_name.get(name) if name else None
            if f is None:
                known = [next((y for y, p in renames.items() if p == x.name), x.name)
                         for x in d.fields]
                self.problems.append("%s: unknown key; known keys here: %s"
                                     % (key_path, ", ".join(known)))
                continue
            self.field(v, key_path, f, msg)

    def field(self, value, path, f, msg):
        pb2 = self.pb2
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            if value is None:
                return
            if not isinstance(value, dict):
                self.problems.append("%s: must be a mapping of keys" % path)
                return
            value_field = f.message_type.fields_by_name["value"]
            target = getattr(msg, f.name)
            for k, v in value.items():
                if not _is_scalar(k):
                    self.problems.append("%s: keys must be plain names" % path)
                    continue
                key = str(k)
                item_path = "%s[%s]" % (path, key)
                if value_field.message_type is not None:
                    self.section(v, item_path, target[key])
                elif _is_number(v):
                    target[key] = float(v)
                else:
                    self.problems.append("%s: expected a number" % item_path)
            return
        if f.message_type is None:
            if f.label == f.LABEL_REPEATED:
                items = value if isinstance(value, (list, tuple)) else [value]
                target = getattr(msg, f.name)
                for item in items:
                    ok, x = _scalar(item, f)
                    if not ok:
                        self.problems.append("%s: expected a list of %s" % (path, _type_name(f, True)))
                        return
                    target.append(x)
                return
            ok, x = _scalar(value, f)
            if not ok:
                self.problems.append("%s: expected %s" % (path, _type_name(f, False)))
                return
            setattr(msg, f.name, x)
            return
        if f.message_type.full_name == "mia.v1.DataRef":
            if f.label == f.LABEL_REPEATED:
                items = value if isinstance(value, (list, tuple)) else [value]
                for i, item in enumerate(items):
                    self.data_ref(item, "%s[%d]" % (path, i), getattr(msg, f.name).add())
            else:
                self.data_ref(value, path, getattr(msg, f.name))
            return
        if f.message_type.full_name == "mia.v1.LayerWidths":
            widths = getattr(msg, f.name)
            widths.SetInParent()
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int):
                    self.problems.append("%s: expected a list of integers" % path)
                    return
                widths.widths.append(item)
            return
        if value is None:
            return
        sub = getattr(msg, f.name)
        sub.SetInParent()
        self.section(value, path, sub)

    def data_ref(self, value, path, ref):
        if not isinstance(value, str) or not value:
            self.problems.append("%s: expected a path (or upload:FILE, artifact:SHA256)" % path)
            return
        if value.startswith("upload:"):
            if not value[len("upload:"):]:
                self.problems.append("%s: upload: needs a local file name" % path)
                return
            self.uploads.append((path, value[len("upload:"):], ref))
        elif value.startswith("artifact:"):
            ident = value[len("artifact:"):].lower()
            if len(ident) != 64 or any(c not in "0123456789abcdef" for c in ident):
                self.problems.append(
                    "%s: artifact: needs the 64 hex digits `mia upload` printed" % path)
                return
            ref.artifact_id = ident
        else:
            ref.server_path = value


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_name(f, plural):
    t = f.cpp_type
    if t == f.CPPTYPE_BOOL:
        return "true or false values" if plural else "true or false"
    if t in (f.CPPTYPE_INT32, f.CPPTYPE_INT64, f.CPPTYPE_UINT32, f.CPPTYPE_UINT64):
        return "integers" if plural else "an integer"
    if t in (f.CPPTYPE_FLOAT, f.CPPTYPE_DOUBLE):
        return "numbers" if plural else "a number"
    return "strings" if plural else "a string"


def _scalar(v, f):
    t = f.cpp_type
    if t == f.CPPTYPE_BOOL:
        return (True, v) if isinstance(v, bool) else (False, None)
    if t in (f.CPPTYPE_INT32, f.CPPTYPE_INT64, f.CPPTYPE_UINT32, f.CPPTYPE_UINT64):
        if isinstance(v, bool) or not isinstance(v, int):
            return False, None
        if t in (f.CPPTYPE_UINT32, f.CPPTYPE_UINT64) and v < 0:
            return False, None
        bits = 32 if t in (f.CPPTYPE_INT32, f.CPPTYPE_UINT32) else 64
        lo = 0 if t in (f.CPPTYPE_UINT32, f.CPPTYPE_UINT64) else -(1 << (bits - 1))
        hi = (1 << bits) - 1 if lo == 0 else (1 << (bits - 1)) - 1
        return (True, v) if lo <= v <= hi else (False, None)
    if t in (f.CPPTYPE_FLOAT, f.CPPTYPE_DOUBLE):
        return (True, float(v)) if _is_number(v) else (False, None)
    if t == f.CPPTYPE_STRING:
        # YAML reads 0.5 or true as a scalar that a string key still takes.
        if isinstance(v, bool):
            return True, "true" if v else "false"
        return (True, str(v)) if _is_scalar(v) else (False, None)
    return False, None


def spec_from_dict(pb2, spec):
    """Returns (AuditSpec, uploads, notes); uploads are (key path, local file,
    DataRef to fill with the artifact id). Raises SpecError."""
    if not isinstance(spec, dict):
        raise SpecError(["the spec must be a mapping: run, data, train, audit (and models), "
                         "or bundle"])
    out = pb2.AuditSpec()
    c = _Converter(pb2)
    c.section(spec, "", out)
    if "bundle" in spec:
        for section in ("run", "data", "train", "audit", "models"):
            if section in spec:
                c.problems.append("bundle: a bundle job has no other sections; remove '%s'"
                                  % section)
                break
        if not c.problems and not out.signals_bundle.HasField("bundle") and not c.uploads:
            c.problems.append("bundle.path: missing; the bundle file on the server, "
                              "upload:FILE or artifact:SHA256")
    if c.problems:
        raise SpecError(c.problems)
    return out, c.uploads, c.notes
