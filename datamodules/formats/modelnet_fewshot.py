"""The released few-shot folds of ModelNet40 (Point-BERT's ``ModelNetFewshot``) as data sets.

Layout, as Point-BERT, Point-MAE and their successors ship and read it::

    ModelNetFewshot/
        5way_10shot/0.pkl … 9.pkl
        5way_20shot/…   10way_10shot/…   10way_20shot/…

Each ``<fold>.pkl`` is one fold (:mod:`datamodules.formats.fewshot_pickle`). ``ModelNetFewShot(root,
way, shot, fold)`` is that fold as a :class:`~datamodules.dataset.PointCloudSet`; ``root``
is the ``ModelNetFewshot`` folder or one setting's folder. ``pointdwc data check`` finds every
setting of a folder and validates all of its folds.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.dataset import CheckReport, SplitSummary, existing_root
from datamodules.errors import DataError
from datamodules.splits.fewshot_fold import FewShotFold, FoldSet, parse_setting, setting_name
from datamodules.formats.fewshot_pickle import read_fold_file


def fold_files(folder: Path) -> list[Path]:
    """The ``<n>.pkl`` files of a setting's folder, in fold order."""
    return sorted((p for p in folder.glob("*.pkl") if p.stem.isdigit()), key=lambda p: int(p.stem))


def find_settings(root: Path) -> dict[tuple[int, int], Path]:
    """``(way, shot) -> folder`` of every setting in ``root`` (or ``root`` itself if it is one)."""
    own = parse_setting(root.name)
    if own is not None and fold_files(root):
        return {own: root}
    found = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        setting = parse_setting(child.name)
        if setting is not None and fold_files(child):
            found.setdefault(setting, child)
    return found


class ModelNetFewShot(FoldSet):
    """Fold ``fold`` of the released ``way``-way ``shot``-shot setting.

    Args:
        root: the ``ModelNetFewshot`` folder (holding ``5way_10shot/`` …) or a setting's folder.
        way: classes per fold.
        shot: train shapes per class.
        fold: which ``<fold>.pkl``.
        query: test shapes each class must have at least (20 in the release).
        normalize: centre each cloud and scale it into the unit sphere (Point-BERT's loader does).
    """

    def __init__(
        self, root: str, way: int = 5, shot: int = 10, fold: int = 0, query: int = 20, normalize: bool = True
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.way = way
        self.shot = shot
        self.fold = fold
        self.query = query
        self.normalize = normalize
        self._fold: FewShotFold | None = None

    def setting_dir(self) -> Path:
        """The folder of this instance's setting; DataError listing the settings there if it is missing."""
        root = existing_root(self.root)
        settings = find_settings(root)
        if (self.way, self.shot) in settings:
            return settings[(self.way, self.shot)]
        have = ", ".join(setting_name(*s) for s in sorted(settings)) or "none"
        raise DataError(
            f"{root}: no {setting_name(self.way, self.shot)}/ folder of <fold>.pkl files (--way {self.way} "
            f"--shot {self.shot}); settings found: {have}"
        )

    def folds(self) -> list[int]:
        """The fold numbers of this setting, ascending."""
        return [int(p.stem) for p in fold_files(self.setting_dir())]

    def file(self) -> Path:
        """This fold's pickle; DataError naming the folds there if it is missing."""
        folder = self.setting_dir()
        path = folder / f"{self.fold}.pkl"
        if not path.is_file():
            raise DataError(f"{path}: fold {self.fold} not found; {folder} holds folds {self.folds()}")
        return path

    def fold_data(self) -> FewShotFold:
        if self._fold is None:
            path = self.file()
            read = read_fold_file(path, self.way, self.shot, self.query, self.normalize)
            self._fold = FewShotFold(read.train, read.test, self.way, self.shot, self.fold, str(path),
                                     read.original_labels, columns=read.columns)
        return self._fold

    def describe(self) -> str:
        return f"ModelNetFewShot({setting_name(self.way, self.shot)}, fold {self.fold})"

    def check(self, progress: bool = True) -> CheckReport:
        """Validate every fold of the setting; summarise this fold and the setting's shape."""
        problems, summaries, notes = [], [], []
        try:
            folds = self.folds()
        except DataError as err:
            return CheckReport([str(err)], [])
        points, columns, queries = set(), set(), set()
        for fold in folds:
            other = ModelNetFewShot(str(self.root), self.way, self.shot, fold, self.query, self.normalize)
            try:
                data = other.fold_data()
            except DataError as err:
                problems.append(str(err))
                continue
            points.add(data.train.points_per_cloud)
            points.add(data.test.points_per_cloud)
            queries.update(data.query_counts().tolist())
            columns.add(data.columns)
            if fold == self.fold or not summaries:
                summaries = [
                    SplitSummary.of(f"{split}[{fold}]", s.points, s.labels, self.way)
                    for split, s in (("train", data.train), ("test", data.test))
                ]
        notes.append(
            f"{len(folds)} folds ({', '.join(map(str, folds))}): {self.way} ways, {self.shot} shots, "
            f"{_span(queries)} test shapes per class, {_span(points)} points per cloud, "
            f"{_span(columns)} columns per point (xyz{' + normals' if 6 in columns else ''}; xyz used)"
        )
        return CheckReport(problems, summaries, notes)

    @classmethod
    def detect(cls, root: Path) -> list[ModelNetFewShot]:
        """One instance (its first fold) per setting found in ``root``."""
        found = []
        for (way, shot), folder in sorted(find_settings(root).items()):
            first = int(fold_files(folder)[0].stem)
            found.append(cls(str(root), way, shot, first))
        return found


def _span(values: set[int]) -> str:
    """``"20"`` or ``"18-20"``."""
    if not values:
        return "?"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"

