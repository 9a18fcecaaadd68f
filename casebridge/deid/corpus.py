"""The test corpus the de-identification is measured on: every file of pydicom's own test data and
of the pydicom-data package (a dev dependency), found on disk only. pydicom.data.get_testdata_files
would also try to download the files neither holds, which this machine cannot do."""

from __future__ import annotations

from pathlib import Path


def corpus_files() -> list[Path]:
    """Every regular file of both test data sets, sorted, the first of two with the same name."""
    from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources

    found = [p for p in (Path(DATA_ROOT) / "test_files").rglob("*") if p.is_file()]
    for source in external_data_sources().values():
        found += [Path(p) for p in source.get_paths("**/*", DataTypes.DATASET)]
    unique: dict[str, Path] = {}
    for path in sorted(found):
        if path.suffix not in {".py", ".pyc"} and path.name != "__init__.py":
            unique.setdefault(str(path.relative_to(path.parents[1])), path)
    return sorted(unique.values())
