"""Writing a snapshot's (or a crawl's staging) tables as Parquet parts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import COMPRESSION_LEVELS, ROWS_PER_PART, column_encodings, dictionary_columns, part_name


class PartWriter:
    """Appends rows to a table directory as Parquet parts of at most `rows_per_part` rows.

    Memory stays bounded by one part's rows. A table that got no rows still gets one empty
    part, so readers can always glob `TABLE/*.parquet`.
    """

    def __init__(
        self, directory: Path, schema: pa.Schema, rows_per_part: int = ROWS_PER_PART, first_part: int = 0
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.rows = 0
        self._parts = first_part  # a resumed crawl numbers its parts after the kept ones
        self._buffer: list[tuple] = []
        self._new: list[str] = []  # parts written since the last take_written()
        self._encodings = column_encodings(directory.name, schema)
        self._level = COMPRESSION_LEVELS.get(directory.name)
        directory.mkdir(parents=True, exist_ok=True)

    def append(self, row: tuple) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.rows_per_part:
            self._flush()

    def write_batches(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Write Arrow batches (e.g. from DuckDB), cast to this table's schema."""
        for batch in batches:
            table = _conform(batch, self.schema)
            for chunk in table.to_batches(max_chunksize=self.rows_per_part):
                self._write(pa.Table.from_batches([chunk], schema=self.schema))

    def _flush(self) -> None:
        if self._buffer:
            columns = list(zip(*self._buffer, strict=True))
            self._write(pa.table(columns, schema=self.schema))
            self._buffer = []

    def _write(self, table: pa.Table) -> None:
        name = part_name(self._parts)
        pq.write_table(
            table,
            self.directory / name,
            compression="zstd",
            compression_level=self._level,
            use_dictionary=dictionary_columns(self.schema),
            column_encoding=self._encodings or None,
        )
        self._new.append(name)
        self._parts += 1
        self.rows += table.num_rows

    def take_written(self) -> list[str]:
        """Write the buffered rows; the names of the parts written since the last call."""
        self._flush()
        new, self._new = self._new, []
        return new

    def close(self) -> int:
        self._flush()
        if self._parts == 0:
            self._write(self.schema.empty_table())
        return self.rows


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Cast a batch to `schema`; SQL's untyped NULL columns become nulls of the right type."""
    columns = []
    for column in schema:
        values = batch.column(column.name)
        if values.type != column.type and values.null_count == len(values):
            columns.append(pa.nulls(len(values), column.type))
        else:
            columns.append(values.cast(column.type))
    return pa.Table.from_arrays(columns, schema=schema)
