"""What the crawl reads: each manifest blob once however many repositories hold it, and
only the link files that carry information."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from regstat.snapshot import digest_ids
from regstat.crawl import CrawlOptions, crawl_source
from regstat.sources.storage_tree.storage import FilesystemStorage
from regstat.sources.storage_tree.jobs import StorageLayoutSource
from regstat.sources.storage_tree.layout import blob_data_path

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"


class CountingStorage(FilesystemStorage):
    """The real file system, in threads (so the counts stay in this process), counting reads."""

    processes = False

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()

    def read_many(self, paths: list[str], limit: int) -> dict[str, bytes | OSError]:
        self.reads.update(paths)
        return super().read_many(paths, limit)


def test_each_manifest_blob_is_read_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "docker", root / "docker")
    repositories = root / "docker/registry/v2/repositories"
    for copy in ("mirror-a", "mirror-b", "mirror-c"):  # every manifest now in 4 repositories
        for manifests in list((repositories).glob("*/*/_manifests")):
            repository = manifests.parent
            if not repository.relative_to(repositories).parts[0].startswith("mirror"):
                shutil.copytree(repository, repositories / copy / repository.relative_to(repositories))
    storage = CountingStorage(str(root))
    options = CrawlOptions(concurrency=4)
    result = crawl_source(StorageLayoutSource(storage, options), str(tmp_path / "snap"), options)
    assert result.complete
    manifests = digest_ids.read(tmp_path / "snap", "manifests").to_pylist()
    held = Counter(m["digest"] for m in manifests)
    assert held and min(held.values()) >= 4  # the point: shared by several repositories
    for digest in held:
        assert storage.reads[blob_data_path(digest)] == 1, digest
    # Layer links are checked by size, not read (one GET each on S3).
    assert not [p for p in storage.reads if "/_layers/" in p]
    assert all(count == 1 for count in storage.reads.values())
