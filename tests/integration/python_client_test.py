"""The Python client (clients/python/mia_client) against a real mia-server
started here on a free loopback port with a temporary data folder, as
tests/integration/server_test.sh starts one: submit (a dict and a YAML file
with an upload), watch, result, scores as numpy arrays, report download; and
the bearer token on every call, seen by a stand-in server, and checked by a
server with a tokens file (tenants).

Usage: python3 python_client_test.py MIA_SERVER MIA STUB_DIR SOURCE_DIR
(Debian's /usr/bin/python3 with python3-grpcio, python3-numpy, python3-yaml.)
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SERVER, MIA, STUBS, SOURCE = (os.path.abspath(a) for a in sys.argv[1:5])
del sys.argv[1:5]
os.environ["MIA_PROTO_PYTHON"] = STUBS
sys.path.insert(0, os.path.join(SOURCE, "clients", "python"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import mia_client  # noqa: E402
from mia_client import Client, MiaError, SpecError  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def make_work(prefix, points):
    """A fresh folder with root/b.npz, a bundle of `points` points and 100
    population rows; returns (folder, root)."""
    work = tempfile.mkdtemp(prefix=prefix)
    root = os.path.join(work, "root")
    os.makedirs(root)
    subprocess.run([MIA, "make-bundle", "--out", os.path.join(root, "b.npz"), "--points",
                    str(points), "--population", "100"], check=True, capture_output=True)
    return work, root


def wait_serving(cls, token):
    """Until cls.server answers an RPC (NOT_FOUND for an unknown audit)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(cls.address, timeout=2, token=token) as c:
                c.get("audits/none")
        except MiaError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                return
        if time.monotonic() > deadline or cls.server.poll() is not None:
            raise RuntimeError("mia-server did not start; see " + cls.log.name)
        time.sleep(0.2)


def stop_server(cls):
    """Stops cls.server (SIGTERM, then SIGKILL) and removes its folder."""
    cls.server.terminate()
    try:
        cls.server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        cls.server.kill()
        cls.server.wait()
    cls.log.close()
    shutil.rmtree(cls.work, ignore_errors=True)


class LiveServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, root = make_work("mia-pyclient-", 300)
        subprocess.run([MIA, "make-bundle", "--out", os.path.join(cls.work, "local.npz"),
                        "--points", "200", "--population", "100", "--seed", "5"],
                       check=True, capture_output=True)
        cls.port = free_port()
        cls.log = open(os.path.join(cls.work, "server.log"), "wb")
        cls.server = subprocess.Popen(
            [SERVER, "--listen_address=127.0.0.1:%d" % cls.port,
             "--data_dir=" + os.path.join(cls.work, "data"), "--data_roots=" + root,
             "--threads_per_job=1", "--workers=1", "--drain_timeout_seconds=5"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.address = "127.0.0.1:%d" % cls.port
        # Serving once an RPC gets an answer (NOT_FOUND for an unknown audit).
        wait_serving(cls, "t0ken")

    @classmethod
    def tearDownClass(cls):
        stop_server(cls)

    def test_submit_watch_result_scores_report(self):
        with Client.connect(self.address, token="secret-token") as mia:
            name = mia.submit({"bundle": {"path": "b.npz", "attacks": ["rmia", "loss"],
                                          "bootstrap": 50, "fprs": [0.1, 0.01]}},
                              labels={"team": "py"})
            self.assertTrue(name.startswith("audits/"), name)
            snapshots = list(mia.watch(name))
            self.assertGreaterEqual(len(snapshots), 1)
            self.assertEqual(snapshots[-1]["state"], "SUCCEEDED")
            versions = [s["version"] for s in snapshots]
            self.assertEqual(versions, sorted(versions))
            self.assertEqual(len(set(versions)), len(versions))

            result = mia.result(name)
            self.assertEqual(result["fprs"], [0.1, 0.01])
            attacks = sorted({r["attack"] for r in result["results"]})
            self.assertEqual(attacks, ["loss", "rmia"])
            for r in result["results"]:
                self.assertGreaterEqual(r["auc"], 0.0)
                self.assertLessEqual(r["auc"], 1.0)
                self.assertLessEqual(r["auc_ci"]["low"], r["auc_ci"]["high"])
            self.assertIsNone(result["policy"])  # the spec had none

            scores = mia.scores(name)
            n = result["audit_points"] * len(result["targets"])
            self.assertEqual(sorted(scores["attacks"]), ["loss", "rmia"])
            self.assertEqual(scores["row_id"].shape, (n,))
            self.assertEqual(scores["scores"].shape, (n, 2))
            self.assertEqual(scores["member"].dtype, np.bool_)
            self.assertTrue(0 < scores["member"].sum() < n)
            # Paged at 7 rows a page: the same arrays.
            paged = mia.scores(name, page_size=7)
            np.testing.assert_array_equal(paged["row_id"], scores["row_id"])
            np.testing.assert_array_equal(paged["scores"], scores["scores"])

            folder = os.path.join(self.work, "report")
            files = mia.download_report(name, folder)
            names = sorted(os.path.basename(f) for f in files)
            for wanted in ("result.json", "scores.csv", "summary.md"):
                self.assertIn(wanted, names)
            with open(os.path.join(folder, "result.json")) as f:
                on_disk = json.load(f)
            by_key = {(r["attack"], r["target"]): r["auc"] for r in result["results"]}
            for r in on_disk["results"]:
                self.assertAlmostEqual(r["auc"], by_key[(r["attack"], r["target"])], places=12)
            self.assertFalse([f for f in os.listdir(folder) if f.endswith(".part")])

    def test_yaml_file_with_an_upload(self):
        path = os.path.join(self.work, "job.yaml")
        with open(path, "w") as f:
            f.write("bundle:\n  path: upload:%s\n  attacks: [loss]\n  bootstrap: 0\n"
                    % os.path.join(self.work, "local.npz"))
        with Client(self.address) as mia:
            name = mia.submit(path)
            last = mia.wait(name)
            self.assertEqual(last["state"], "SUCCEEDED", last["error"])
            spec = mia.get(name)["spec"]
            self.assertEqual(len(spec["signals_bundle"]["bundle"]["artifact_id"]), 64)
            self.assertEqual(mia.result(name)["results"][0]["attack"], "loss")

    def test_bad_specs(self):
        with Client(self.address) as mia:
            # Refused by the client's mapping: every problem, by key path.
            with self.assertRaises(SpecError) as e:
                mia.submit({"bundle": {"path": "b.npz", "colour": 1, "bootstrap": "many"}})
            self.assertEqual(len(e.exception.problems), 2)
            self.assertIn("bundle.colour: unknown key", str(e.exception))
            self.assertIn("bundle.bootstrap: expected an integer", str(e.exception))
            # Refused by the server's validator.
            with self.assertRaises(MiaError) as e:
                mia.submit({"bundle": {"path": "b.npz", "fprs": [2]}})
            self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("fprs", e.exception.details)
            with self.assertRaises(MiaError) as e:
                mia.result("audits/nope")
            self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)


class SpecMappingTest(unittest.TestCase):
    """The dict -> AuditSpec mapping, as `mia submit` maps a YAML file."""

    def setUp(self):
        self.pb2 = mia_client.client._stubs.load()[0]

    def test_sections_lists_refs_and_policy(self):
        spec, uploads, notes = mia_client.spec_from_dict(self.pb2, {
            "run": {"random_seed": 3, "log_dir": "x"},
            "data": {"dataset": "purchase100", "data_dir": "artifact:" + "ab" * 32},
            "train": {"hidden": [64, 32], "learning_rate": 0.1},
            "audit": {"attacks": "rmia", "fprs": [0.01], "report_log": "r",
                      "policy": {"use": "upper_ci", "max_auc": 0.6,
                                 "max_tpr_at_fpr": {0.001: 0.02},
                                 "attacks": {"rmia": {"max_epsilon_lower_bound": 1}}}},
            "models": {"torchscript": ["m0.pt", "upload:m1.pt"], "keep": "keep.npy"},
        })
        self.assertEqual(spec.run.random_seed, 3)
        self.assertFalse(spec.run.HasField("log_dir"))
        self.assertEqual(len(notes), 2)
        self.assertEqual(spec.data.data_dir.artifact_id, "ab" * 32)
        self.assertEqual(list(spec.train.hidden.widths), [64, 32])
        self.assertEqual(list(spec.audit.attacks), ["rmia"])  # a scalar is a list of one
        self.assertEqual(spec.audit.policy.use, "upper_ci")
        self.assertEqual(dict(spec.audit.policy.max_tpr_at_fpr), {"0.001": 0.02})
        self.assertEqual(spec.audit.policy.attacks["rmia"].max_epsilon_lower_bound, 1)
        self.assertEqual(spec.models.torchscript[0].server_path, "m0.pt")
        self.assertEqual([(p, f) for p, f, _ in uploads], [("models.torchscript[1]", "m1.pt")])
        # No hidden layers differs from unset.
        spec, _, _ = mia_client.spec_from_dict(self.pb2, {"train": {"hidden": []}})
        self.assertTrue(spec.train.HasField("hidden"))

    def test_problems(self):
        with self.assertRaises(SpecError) as e:
            mia_client.spec_from_dict(self.pb2, {
                "bundle": {"path": "b.npz"}, "audit": {},
            })
        self.assertIn("a bundle job has no other sections", str(e.exception))
        with self.assertRaises(SpecError) as e:
            mia_client.spec_from_dict(self.pb2, {"audit": {"policy": {"max_auc": "high"}},
                                                 "signals_bundle": {}})
        self.assertEqual(sorted(e.exception.problems),
                         ["audit.policy.max_auc: expected a number",
                          "signals_bundle: unknown key; known keys here: run, data, train, "
                          "audit, models, bundle"])


class AuthServerTest(unittest.TestCase):
    """A server with a tokens file: the client's token is checked, names the
    caller's tenant, and another tenant's audits do not exist for it; the
    server's log holds no token."""

    TOKEN_A = "py-token-a-3c1f9e0b7d"
    TOKEN_B = "py-token-b-8a2d4f6c1e"

    @classmethod
    def setUpClass(cls):
        import hashlib
        cls.work, root = make_work("mia-pyclient-auth-", 200)
        tokens = os.path.join(cls.work, "tokens.yaml")
        with open(tokens, "w") as f:
            f.write("tokens:\n")
            for token, tenant in ((cls.TOKEN_A, "team-a"), (cls.TOKEN_B, "team-b")):
                f.write("  - {sha256: %s, tenant: %s, role: submitter}\n"
                        % (hashlib.sha256(token.encode()).hexdigest(), tenant))
        cls.port = free_port()
        cls.log_path = os.path.join(cls.work, "server.log")
        cls.log = open(cls.log_path, "wb")
        cls.server = subprocess.Popen(
            [SERVER, "--listen_address=127.0.0.1:%d" % cls.port,
             "--data_dir=" + os.path.join(cls.work, "data"), "--data_roots=" + root,
             "--auth_tokens_file=" + tokens, "--threads_per_job=1", "--workers=1",
             "--drain_timeout_seconds=5"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.address = "127.0.0.1:%d" % cls.port
        wait_serving(cls, cls.TOKEN_A)

    @classmethod
    def tearDownClass(cls):
        stop_server(cls)

    def test_token_and_tenant(self):
        with Client(self.address, token=self.TOKEN_A) as a:
            name = a.submit({"bundle": {"path": "b.npz", "attacks": ["loss"], "bootstrap": 10}})
            self.assertEqual(a.wait(name)["state"], "SUCCEEDED")
            self.assertIn(name, [x["name"] for x in a.list()])
        with Client(self.address, token=self.TOKEN_B) as b:
            with self.assertRaises(MiaError) as e:
                b.get(name)
            self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
            self.assertNotIn(name, [x["name"] for x in b.list()])
        for token in (None, "py-token-unknown"):
            with Client(self.address, token=token) as anon:
                with self.assertRaises(MiaError) as e:
                    anon.get(name)
                self.assertEqual(e.exception.code, grpc.StatusCode.UNAUTHENTICATED)
                self.assertNotIn("py-token-unknown", str(e.exception))
        self.log.flush()
        with open(self.log_path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        for token in (self.TOKEN_A, self.TOKEN_B, "py-token-unknown"):
            self.assertNotIn(token, log)


class TokenTest(unittest.TestCase):
    """The token goes out as "authorization: Bearer ..." on every call, and
    none without one (a stand-in server records them)."""

    def test_bearer_metadata(self):
        pb2, pb2_grpc = mia_client.client._stubs.load()
        seen = []

        class Recorder(pb2_grpc.AuditServiceServicer):
            def GetAudit(self, request, context):
                seen.append(dict(context.invocation_metadata()).get("authorization"))
                context.abort(grpc.StatusCode.NOT_FOUND, "%s not found" % request.name)

        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        pb2_grpc.add_AuditServiceServicer_to_server(Recorder(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with Client("127.0.0.1:%d" % port, token="abc123") as mia:
                with self.assertRaises(MiaError) as e:
                    mia.get("x")
                self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
            with Client("127.0.0.1:%d" % port) as mia:
                with self.assertRaises(MiaError):
                    mia.get("x")
        finally:
            server.stop(0)
        self.assertEqual(seen, ["Bearer abc123", None])


if __name__ == "__main__":
    unittest.main(verbosity=2)
