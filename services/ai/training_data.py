"""An uploaded training CSV, read and checked before anything is stored or queued: every refusal
is a 413 or a 422 whose detail names the problem (the row and column of a bad cell).

The file: UTF-8 (a BOM is fine), comma-separated, a header row of unique column names, then one
row per example. The target column and the feature columns (all others when none are named) must
hold finite numbers in every row; other columns are ignored.
"""

import csv
import io
import math
from array import array
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from config import settings
from errors import PayloadTooLarge, Unprocessable
from ml import tabular

CELL_SHOWN_CHARS = 40
# Larger magnitudes overflow float32 (the network's numbers) or the squares of the scaler.
MAX_MAGNITUDE = 1e30
COLUMN_NAME_MAX_CHARS = 128


@dataclass(frozen=True)
class TrainingData:
    features: list[str]
    target: str
    values: np.ndarray  # rows x (features + target), float64; the target is the last column

    @property
    def columns(self) -> list[str]:
        return [*self.features, self.target]

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


def _refuse(detail: str, code: str = "invalid_training_data") -> Unprocessable:
    return Unprocessable(detail, code=code)


def read_upload(file: BinaryIO) -> str:
    """The file's text; 413 past MAX_UPLOAD_MB, 422 when empty or not UTF-8."""
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    data = file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is larger than {settings.MAX_UPLOAD_MB} MB (MAX_UPLOAD_MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(f"the file is not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise _refuse("the file is empty", code="empty_file")
    return text


def parse(text: str, *, target: str, features: list[str] | None) -> TrainingData:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(row for row in reader if row)
    except StopIteration:
        raise _refuse("the file is empty", code="empty_file") from None
    except csv.Error as exc:
        raise _refuse(f"line {reader.line_num} is not valid CSV: {exc}") from exc
    columns = _columns(header)
    wanted = _wanted(columns, target=target, features=features)
    positions = [columns.index(name) for name in wanted]
    limit = settings.AI_TRAIN_MAX_ROWS
    numbers = array("d")  # flat, 8 bytes a value (Python floats in lists would take four times that)
    rows = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if rows == limit:
                raise _refuse(
                    f"the file has more than {limit} data rows (AI_TRAIN_MAX_ROWS)", code="too_many_rows"
                )
            number = rows + 1
            if len(cells) != len(columns):
                raise _refuse(
                    f"row {number} (line {reader.line_num}) has {len(cells)} cells; "
                    f"the header has {len(columns)}"
                )
            numbers.extend(
                _number(cells[i], row=number, line=reader.line_num, column=columns[i]) for i in positions
            )
            rows = number
    except csv.Error as exc:
        raise _refuse(f"line {reader.line_num} is not valid CSV: {exc}") from exc
    if not rows:
        raise _refuse("the file has a header but no data rows", code="empty_file")
    if rows < tabular.MIN_ROWS:
        raise _refuse(
            f"the file has {rows} data rows; training needs at least {tabular.MIN_ROWS} "
            "(70% to learn from, 30% to test on)"
        )
    values = np.frombuffer(numbers, dtype=np.float64).reshape(rows, len(wanted))
    return TrainingData(features=wanted[:-1], target=target, values=values)


def _columns(header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    for position, name in enumerate(columns, start=1):
        if not name:
            raise _refuse(f"column {position} of the header has no name")
        if len(name) > COLUMN_NAME_MAX_CHARS:
            raise _refuse(f"column {position}'s name is longer than {COLUMN_NAME_MAX_CHARS} characters")
    seen: set[str] = set()
    duplicates: dict[str, None] = {}  # in the order they repeat
    for name in columns:
        if name in seen:
            duplicates[name] = None
        seen.add(name)
    if duplicates:
        names = ", ".join(f"'{name}'" for name in duplicates)
        raise _refuse(f"duplicate column name(s) in the header: {names}", code="duplicate_columns")
    return columns


def _wanted(columns: list[str], *, target: str, features: list[str] | None) -> list[str]:
    """The feature columns, then the target."""
    if target not in columns:
        raise _refuse(
            f"the target column '{target}' is not in the file (its columns: {', '.join(columns)})",
            code="missing_target",
        )
    if features is None:
        features = [name for name in columns if name != target]
    else:
        absent = [name for name in features if name not in columns]
        if absent:
            raise _refuse(
                f"feature column(s) not in the file: {', '.join(absent)} (its columns: {', '.join(columns)})",
                code="missing_features",
            )
        if target in features:
            raise _refuse(f"the target column '{target}' cannot also be a feature")
    if not features:
        raise _refuse("there is no feature column: the file needs at least one column besides the target")
    if len(features) > settings.AI_TRAIN_MAX_FEATURES:
        raise _refuse(f"more than {settings.AI_TRAIN_MAX_FEATURES} feature columns (AI_TRAIN_MAX_FEATURES)")
    return [*features, target]


def _number(cell: str, *, row: int, line: int, column: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
        shown = text if len(text) <= CELL_SHOWN_CHARS else text[:CELL_SHOWN_CHARS] + "…"
        reason = "is empty" if not text else f"is not a number: {shown!r}"
    else:
        reason = f"is not a finite number within ±{MAX_MAGNITUDE:g}: {text!r}"
    if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE:
        return value
    raise _refuse(f"row {row} (line {line}), column '{column}' {reason}", code="non_numeric_cell")
