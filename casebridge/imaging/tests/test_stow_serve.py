"""STOW-RS against the real `casebridge serve` over TLS: dicomweb-client sends any body over
1 MB with chunked transfer encoding, which Django alone reads as empty. Under serve the body is
de-chunked by the server and stored part by part; the instances become the sender's files."""

from __future__ import annotations

import hashlib
import io
import os
import signal
from collections.abc import Iterator

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from casebridge.imaging.synthetic import cbct_series
from casebridge.transfer.testing import free_port
from casebridge.vault.tests.test_tus_client import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(home=tmp_path_factory.mktemp("stow-home"), port=free_port(), token="", transfer_port=free_port())
    srv.cli("migrate", "--noinput")
    srv.cli("createadmin", "--email", "owner@stow.test", "--org", "Stow Dental", "--kind", "practice")
    srv.token = srv.cli(
        *("serviceaccount", "create", "--org", "stow-dental", "--name", "cbct-scanner", "--role", "staff"),
        *("--scope", "cases:write", "--scope", "cases:read"),
    ).strip()
    srv.start()
    yield srv
    if srv.process is not None and srv.process.poll() is None:
        os.killpg(srv.process.pid, signal.SIGTERM)
        srv.process.wait(timeout=20)


def test_a_chunked_body_of_many_instances_is_stored_whole(server: Server) -> None:
    slices = cbct_series("stow over serve", slices=12, size=256)  # ~1.5 MB: sent chunked
    assert sum(len(s) for s in slices) > 10**6
    datasets = [pydicom.dcmread(io.BytesIO(s)) for s in slices]
    session = requests.Session()
    session.verify = server.cert  # the server's self-signed certificate, verified
    session.trust_env = False  # (a CA bundle named in the environment would replace it)
    client = DICOMwebClient(url=f"{server.base}/dicomweb", session=session, headers=server.headers())

    answer = client.store_instances(datasets)

    assert sorted(i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence) == sorted(
        d.SOPInstanceUID for d in datasets
    )
    assert "FailedSOPSequence" not in answer
    listed = server.request("GET", f"{server.base}/api/v1/files", headers=server.headers()).json()["results"]
    dicom = [f["id"] for f in listed if f["type"] == "dicom"]
    assert len(dicom) == len(slices)
    # Byte for byte what was sent (as dicomweb-client encodes it), through the vault and back.
    sent = set()
    for dataset in datasets:
        with io.BytesIO() as out:
            pydicom.dcmwrite(out, dataset)
            sent.add(hashlib.sha256(out.getvalue()).hexdigest())
    stored = {
        hashlib.sha256(
            server.request("GET", f"{server.base}/api/v1/files/{file_id}/content", headers=server.headers()).content
        ).hexdigest()
        for file_id in dicom
    }
    assert stored == sent
