"""Modality Performed Procedure Step (PS3.4 F): pynetdicom's N-CREATE and N-SET against `mira
serve`, the statuses of F.7.2 (and PS3.7 C) for each rule, and the worklist entry the step
names following it (STARTED, then COMPLETED). On both index backends."""
import json

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from conftest import BACKENDS, new_postgres_database, run_mira
from dimse_peers import MiraServer, pynetdicom_quiet

MPPS = "1.2.840.10008.3.1.2.3.3"


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("mpps")
    args = ["--archive", str(d / "archive")]
    if request.param == "postgresql":
        args += ["--index", new_postgres_database()]
    run_mira("worklist", "add", *args, "--patient-id", "P1", "--patient-name", "Doe^Jane",
             "--accession", "ACC1", "--sps-id", "SPS1", "--modality", "CT", "--station-aet",
             "CT1", "--date", "20240105", "--time", "0930")
    with MiraServer(d / "archive", "--quiet", archive_args=args) as srv:
        yield srv, args


def entry(args):
    rows = [json.loads(l) for l in
            run_mira("worklist", "list", *args, "--json").stdout.decode().splitlines()]
    return rows[0]


def create_attrs(status="IN PROGRESS"):
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    step = Dataset()
    step.AccessionNumber = "ACC1"
    step.ScheduledProcedureStepID = "SPS1"
    step.StudyInstanceUID = generate_uid()
    step.RequestedProcedureID = "ACC1"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepStartDate = "20240105"
    ds.PerformedProcedureStepStartTime = "093500"
    ds.PerformedProcedureStepStatus = status
    ds.Modality = "CT"
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.PerformedSeriesSequence = []
    return ds


@pytest.fixture
def assoc(served):
    from pynetdicom import AE
    pynetdicom_quiet()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MPPS)
    a = ae.associate("127.0.0.1", served[0].port, ae_title="MIRA")
    assert a.is_established
    yield a
    a.release()


def test_mpps_life(served, assoc):
    _, args = served
    uid = generate_uid()
    status, _ = assoc.send_n_create(create_attrs(), MPPS, uid)
    assert status.Status == 0x0000
    e = entry(args)
    assert e["status"] == "STARTED" and e["mpps_uid"] == uid
    # the same instance again: duplicate (PS3.7 C, 0x0111)
    status, _ = assoc.send_n_create(create_attrs(), MPPS, uid)
    assert status.Status == 0x0111
    # an attribute N-SET may not change (Table F.7.2-1: Modality is "Not allowed")
    mod = Dataset()
    mod.Modality = "MR"
    status, _ = assoc.send_n_set(mod, MPPS, uid)
    assert status.Status == 0x0106
    # COMPLETED without the end date and time (final state requirements, F.7.2.2.1)
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_set(done, MPPS, uid)
    assert status.Status == 0x0121  # present (type 2 at create) but empty
    # with them, but no performed series
    done.PerformedProcedureStepEndDate = "20240105"
    done.PerformedProcedureStepEndTime = "100000"
    status, _ = assoc.send_n_set(done, MPPS, uid)
    assert status.Status == 0x0121
    # an intermediate N-SET keeps it IN PROGRESS
    note = Dataset()
    note.PerformedProcedureStepDescription = "CT head without contrast"
    status, _ = assoc.send_n_set(note, MPPS, uid)
    assert status.Status == 0x0000
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ProtocolName = "HEAD"
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    done.PerformedSeriesSequence = [series]
    status, _ = assoc.send_n_set(done, MPPS, uid)
    assert status.Status == 0x0000
    assert entry(args)["status"] == "COMPLETED"
    # final: no N-SET any more (0x0110 with Error ID A710)
    status, _ = assoc.send_n_set(note, MPPS, uid)
    assert status.Status == 0x0110
    assert status.get("ErrorID") == 0xA710
    assert entry(args)["status"] == "COMPLETED"


def test_mpps_refusals(served, assoc):
    # created in another state than IN PROGRESS
    status, _ = assoc.send_n_create(create_attrs("COMPLETED"), MPPS, generate_uid())
    assert status.Status == 0x0106
    # a required attribute missing
    ds = create_attrs()
    del ds.Modality
    status, _ = assoc.send_n_create(ds, MPPS, generate_uid())
    assert status.Status == 0x0120
    # N-SET of an instance that does not exist
    mod = Dataset()
    mod.PerformedProcedureStepDescription = "x"
    status, _ = assoc.send_n_set(mod, MPPS, generate_uid())
    assert status.Status == 0x0112
    # an unknown status value
    uid = generate_uid()
    assert assoc.send_n_create(create_attrs(), MPPS, uid)[0].Status == 0x0000
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "PAUSED"
    assert assoc.send_n_set(bad, MPPS, uid)[0].Status == 0x0106
    # DISCONTINUED needs the end, not the series
    stop = Dataset()
    stop.PerformedProcedureStepStatus = "DISCONTINUED"
    stop.PerformedProcedureStepEndDate = "20240105"
    stop.PerformedProcedureStepEndTime = "094000"
    assert assoc.send_n_set(stop, MPPS, uid)[0].Status == 0x0000
    assert assoc.send_n_set(stop, MPPS, uid)[0].Status == 0x0110
