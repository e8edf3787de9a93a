"""client/compare.py: compare keys, grouping job records into compares, and their figures."""

from __future__ import annotations

from shared_protocol.messages import Manifest


def records(addon):
    return addon.client.records.JobRecord


def manifest(faces: int, vram: float | None) -> Manifest:
    return Manifest(format="glb", faces=faces, vertices=faces // 2, bbox_min=(0, 0, 0),
                    bbox_max=(1, 1, 1), seed=7, model="m",
                    timings_s={"load": 0.5, "generate": 2.0, "pipeline.bake": 0.25},
                    peak_vram_mb=vram)  # fmt: skip


def test_a_key_round_trips_and_other_keys_are_not_compares(addon) -> None:
    compare = addon.client.compare
    key = compare.CompareKey(compare.new_compare_id(), 2, "hunyuan3d-2:mini")
    assert compare.parse_key(str(key)) == key  # a model id may hold the separator
    for other in (None, "", "my-key", "compare:abc:x:m", "compare::1:m", "other:abc:1:m"):
        assert compare.parse_key(other) is None
    assert len(compare.new_compare_id()) == compare.ID_HEX_CHARS


def test_jobs_group_into_compares_in_row_order_with_their_figures(addon) -> None:
    compare, JobRecord = addon.client.compare, records(addon)  # noqa: N806
    key = compare.CompareKey
    jobs = [
        JobRecord("j1", "", "b", "a chair", "text", 7, request_key=str(key("c1", 1, "b"))),
        JobRecord("j0", "", "a", "a chair", "text", 7, request_key=str(key("c1", 0, "a"))),
        JobRecord("j2", "", "a", "lone", "text", 1),  # not in a compare
        JobRecord("j3", "", "a", "a lamp", "text", 3, request_key=str(key("c2", 0, "a"))),
    ]
    jobs[0].manifest, jobs[0].state = manifest(20_000, 5222.4), "succeeded"
    jobs[1].manifest, jobs[1].state = manifest(512, None), "succeeded"
    found = compare.compares(jobs)
    assert list(found) == ["c1", "c2"]
    first = found["c1"]
    assert [e.job.job_id for e in first.entries] == ["j0", "j1"] and first.label == "a chair"
    assert first.finished and not found["c2"].finished
    tall = first.entries[1]
    assert tall.seconds == 2.75 and tall.faces == 20_000 and tall.peak_vram_mb == 5222.4
    assert compare.figures_text(tall) == "2.8 s · 20,000 faces · 5.1 GB"
    assert compare.figures_text(first.entries[0]) == "2.8 s · 512 faces · no GPU"
    assert compare.figures_text(found["c2"].entries[0]) == "queued"
    assert compare.vram_text(300.0) == "300 MB"
