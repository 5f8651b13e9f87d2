"""mia_client: a Python client of the mia audit service.

    from mia_client import Client
    with Client.connect("localhost:50051", token="...") as mia:
        name = mia.submit("audit.yaml")
        for audit in mia.watch(name):
            print(audit["state"], audit["progress"])
        result = mia.result(name)
        scores = mia.scores(name)
        mia.download_report(name, "report/")

See clients/python/README.md.
"""

from .client import Client, MiaError, to_dict
from .spec import SpecError, spec_from_dict

__all__ = ["Client", "MiaError", "SpecError", "spec_from_dict", "to_dict"]
