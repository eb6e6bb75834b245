"""tools/demo.py's helpers: which real pages it evaluates on, and when it may reuse the pages
an earlier run rendered."""

import json

from conftest import import_script

demo = import_script("tools/demo.py")


def test_real_pages_come_from_a_folder_with_a_coco_json(tmp_path, capsys):
    assert demo.real_pages("") is None  # asked for none
    assert demo.real_pages(str(tmp_path / "missing")) is None
    assert "is not a folder with a COCO JSON; skipped" in capsys.readouterr().out
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.jpg"}]}
    (tmp_path / "pages.json").write_text(json.dumps(coco))
    annotations, images = demo.real_pages(str(tmp_path))
    assert annotations == tmp_path / "pages.json"
    assert images == [tmp_path / "a.png", tmp_path / "b.jpg"]


def test_pages_are_reused_only_with_the_same_settings(tmp_path):
    assert demo.rendered_with(tmp_path) is None
    settings = {"pages": 160, "held_out": 8, "seed": 0, "style": "document"}
    (tmp_path / "pages.json").write_text(json.dumps(settings))
    assert demo.rendered_with(tmp_path) == settings
    (tmp_path / "pages.json").write_text("{not json")
    assert demo.rendered_with(tmp_path) is None  # an unreadable record means: render again
