"""Checks the generated Python stubs with Debian's python3-protobuf and
python3-grpcio: the modules import, a CreateAuditRequest builds, survives the
binary and JSON encodings, and the service stub constructs on a channel.

Usage: python3 python_stubs_test.py <folder with mia/v1/audit_pb2.py>
"""

import sys


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, sys.argv[1])

    import grpc
    from google.protobuf import json_format
    from mia.v1 import audit_pb2
    from mia.v1 import audit_pb2_grpc

    request = audit_pb2.CreateAuditRequest(request_id="r-1", priority=2)
    request.labels["team"] = "privacy"
    spec = request.spec
    spec.run.num_experiments = 1
    spec.run.random_seed = 0  # explicitly 0: must stay distinguishable from unset
    spec.data.dataset = "purchase100"
    spec.data.data_dir.server_path = "datasets/dataset_purchase.gz"
    spec.data.population_size = 10000
    spec.train.model_name = "mlp"
    spec.train.hidden.widths.extend([128])
    spec.audit.attacks.extend(["rmia-offline", "lira"])
    spec.audit.num_ref_models = 3

    decoded = audit_pb2.CreateAuditRequest.FromString(request.SerializeToString())
    assert decoded == request, decoded
    assert decoded.spec.run.HasField("random_seed")
    assert not decoded.spec.run.HasField("threads")
    assert decoded.spec.data.data_dir.WhichOneof("source") == "server_path"

    from_json = json_format.Parse(json_format.MessageToJson(request),
                                  audit_pb2.CreateAuditRequest())
    assert from_json == request, from_json

    bundle = audit_pb2.AuditSpec(signals_bundle=audit_pb2.SignalsBundleInput(
        bundle=audit_pb2.DataRef(artifact_id="a" * 64), attacks=["rmia"], seed=3))
    assert bundle.HasField("signals_bundle") and not bundle.HasField("data")

    assert audit_pb2.Audit.State.Name(audit_pb2.Audit.CANCELLED) == "CANCELLED"
    service = audit_pb2.DESCRIPTOR.services_by_name["AuditService"]
    assert service.methods_by_name["WatchAudit"].output_type.name == "WatchAuditResponse"

    channel = grpc.insecure_channel("localhost:1")  # never connected
    stub = audit_pb2_grpc.AuditServiceStub(channel)
    for method in ("CreateAudit", "GetAudit", "ListAudits", "WatchAudit", "CancelAudit",
                   "DeleteAudit", "ListAuditScores", "ListReportFiles", "GetReportFile",
                   "UploadArtifact"):
        assert callable(getattr(stub, method)), method
    channel.close()
    print("python stubs OK (grpcio %s)" % grpc.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
