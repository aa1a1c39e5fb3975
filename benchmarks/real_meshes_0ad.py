"""A second labelled set of real, artist-made meshes: 0 A.D.'s game art, for linear probes and fine-tuning.

Source: Debian's ``0ad-data`` (the art of the game 0 A.D.: buildings of a dozen ancient
civilisations, ships, weapons, armour, trees, rocks...). Its meshes are 0 A.D.'s binary PMD
files (``art/meshes/**.dae.cached.pmd``) inside one stored zip,
``/usr/share/games/0ad/mods/public/public.zip`` (3.2 GB), read member by member with
:mod:`zipfile` and :func:`benchmarks.pmd.read_pmd`, never extracted. The meshes are mapped into
shape classes by the explicit table :data:`CLASSES` (with the parts of split models,
near-duplicate variants and ambiguous models left out by :data:`EXCLUDED`), checked and
deduplicated, and written as ``.obj`` in the :class:`datamodules.MeshFolder` layout with a fixed,
seeded, stratified split, exactly as ``benchmarks/real_meshes.py`` does for FlightGear (whose
helpers this script uses)::

    <root>/train/<class>/<name>.obj
    <root>/test/<class>/<name>.obj
    <root>/manifest.json               sources, hashes, skipped, duplicate and dropped models

A mesh is left out if it has fewer than :data:`MIN_FACES` triangles, fails
:func:`benchmarks.real_meshes.mesh_problem`, has the same vertex set (up to translation and
uniform scale) as a mesh kept before it, or is a near-duplicate of one kept before it in its
class: their 2,048-point clouds closer than 1.2 times a second sample of either would be
(:mod:`benchmarks.cloud_dedup`, the rule of the KiCad pretraining corpus).
Classes with fewer than ``--min-per-class`` distinct models (default 15) are dropped: with
0.0.26-1 (Debian bookworm) that leaves 17 classes and 732 shapes (512 train, 220 test), axe (7),
bow (9) and bush (14) out; the build takes about 9 s (the zip's members are stored, not
compressed). Coordinates stay as in the files (0 A.D. units, y up); MeshFolder centres and scales each cloud.

``<root>`` defaults to ``$POINTDWC_CACHE/real_meshes/zeroad``. The set is derived data under
the cache, never committed; it appears atomically and a second run leaves it alone (``--force``
rebuilds it). The package itself is not installed by this script.

Usage:
    python benchmarks/real_meshes_0ad.py                     # build once, print the table
    python benchmarks/real_meshes_0ad.py --force --min-per-class 8   # also the smaller classes

From Python::

    from benchmarks.real_meshes_0ad import build
    root = build()
    data = MeshFolder(root=str(root), num_points=2048)
"""

from __future__ import annotations

import fnmatch
import hashlib
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.cloud_dedup import Deduplicator, sampling_noise  # noqa: E402
from benchmarks.debian import exit_status  # noqa: E402
from benchmarks.pmd import read_pmd  # noqa: E402
from benchmarks.real_meshes import (  # noqa: E402
    MIN_TEST,
    SEED,
    Converted,
    Source,
    already_built,
    compact,
    mesh_problem,
    report_build,
    same_geometry,
    set_parser,
    unit_vertices,
    write_set,
)
from benchmarks.vrml import sample_surface  # noqa: E402
from datamodules.cache import atomic_directory, default_cache_dir  # noqa: E402
from datamodules.errors import DataError  # noqa: E402
from datamodules.formats.point_files import subsample_seed  # noqa: E402

PACKAGE = "0ad-data"
ZIP_PATH = Path("/usr/share/games/0ad/mods/public/public.zip")
INSTALL_COMMAND = f"apt-get install -y {PACKAGE}"
TESTED_VERSION = "0.0.26-1"
"""The package version (Debian bookworm) the table was made from."""
MESH_PREFIX = "art/meshes/"
MESH_SUFFIX = ".dae.cached.pmd"
SET_NAME = "zeroad"
MIN_PER_CLASS = 15
"""Default ``--min-per-class``: classes with fewer distinct models are dropped."""
MIN_FACES = 24
"""Fewer triangles than this is a stick, a plate or a billboard, not a shape worth sampling."""
DEDUP_POINTS = 2048
"""Points sampled per mesh for the near-duplicate rule (:class:`benchmarks.cloud_dedup.Deduplicator`)."""
PROGRESS_EVERY = 100
"""Print a progress line after this many meshes read."""
LAYOUT_VERSION = 1
"""Bump when the table, the reader or the output changes: written into the manifest."""

CLASSES: dict[str, tuple[str, ...]] = {
    # ---- buildings (art/meshes/structural): one model per civilisation and type; where a
    # building is split into parts only its main structure is taken (EXCLUDED drops the rest).
    # Dwellings: one- or two-storey houses with a roof, of every civilisation.
    "house": (
        "structural/*_house_[0-9a-e]",
        "structural/*_house_0[1-9]",
        "structural/*_house_10",
    ),
    # Straight curtain-wall segments (long, medium and short; stone, mud brick and palisade).
    "wall": (
        "structural/*_wall_long*",
        "structural/*_wall_medium*",
        "structural/*_wall_short*",
        "structural/kart_s_wall_[lms]",
        "structural/palisade_bamboo_long",
        "structural/palisade_bamboo_medium",
        "structural/palisade_bamboo_short",
    ),
    # Towers: defence, sentry, scout, wooden, bolt and artillery towers, and wall towers.
    "tower": (
        "structural/*_defense_tower*",
        "structural/*_sentry_tower",
        "structural/*_scout_tower*",
        "structural/*_wooden_tower*",
        "structural/*_tower_bolt*",
        "structural/*_tower_artillery*",
        "structural/*_wall_tower*",
        "structural/*_ballista_tower",
        "structural/iber_tower_[12]",
        "structural/maur_tower_double_[ab]",
        "structural/rome_tower",
        "structural/rome_tower_wood",
        "structural/sele_tower",
        "structural/han_great_tower",
        "structural/palisade_bamboo_tower",
    ),
    # Temples: a cella on a platform, mostly with columns (the Greek temples' platforms and
    # the Kushite temple's halves are separate parts, left out).
    "temple": ("structural/*temple*",),
    # Fortresses: large walled compounds with towers.
    "fortress": ("structural/*_fortress*",),
    # Ship hulls with oars or masts (sails, tents and shields are separate parts).
    "ship": (
        "structural/*_ship_*",
        "structural/*_trireme",
        "structural/*_bireme",
        "structural/*_tri",
        "structural/*fishing_boat",
        "structural/*_fishship",
        "structural/*_merch_ship",
        "structural/*_merchant_ship",
        "structural/*_fireship",
        "structural/celt_boat_fishing",
        "structural/celt_warship",
        "structural/celt_rowboat",
        "structural/celt_skiff",
        "structural/celt_barge",
        "structural/viking_longship",
    ),
    # ---- props (art/meshes/props): what units carry.
    # One-handed blades with a hilt: swords, falcatas, a dagger, a khopesh.
    "sword": (
        "props/weap_xiphos_*",
        "props/weap_falcata_*",
        "props/weap_csword_*",
        "props/sword_spartan_1",
        "props/sword_thracian_*",
        "props/broadsword_celt",
        "props/maur_long_sword",
        "props/weapons/gladius_*",
        "props/weapons/khopesh",
        "props/weapons/akinakes_01",
        "props/weapons/dagger_01",
        "props/weapons/sword/*",
    ),
    # Long shafts with a head: spears, lances, pikes, javelins, pila, halberds.
    "spear": (
        "props/weap_spear_*",
        "props/spear_hoplite",
        "props/spear_lance*",
        "props/spear_bamboo",
        "props/sarissa_*",
        "props/pers_cav_lance",
        "props/weap_pillum_*",
        "props/weap_jav_[a-g]",
        "props/weapons/spear/*",
    ),
    # Axes (hand, battle and two-handed axes) and the sagaris.
    "axe": (
        "props/weap_axe_*",
        "props/tool_axe",
        "props/kush_axe",
        "props/maur_2h_axe",
        "props/weapons/sagaris_*",
    ),
    # Bows (long, composite, recurve), unstrung or strung, without arrows.
    "bow": (
        "props/bow_long_indian_a",
        "props/maur_bamboo_bow*",
        "props/weapons/bow_*",
        "props/weapons/bow/weap_han_bow",
        "props/weapons/bow/weap_han_bow_composite",
    ),
    # Shields: round, oval, hexagonal, crescent (pelta), tall and rectangular (scutum).
    "shield": ("props/shield/*",),
    # Metal and leather helmets (not heads, hair, hats, turbans or crests: EXCLUDED).
    "helmet": ("props/helmet/*",),
    # Jars: amphorae, vases and pots.
    "pottery": (
        "props/amphora_[a-e]",
        "props/vase",
        "props/wrld_vase_*",
        "props/kush_nuba_camp_pottery_*",
    ),
    # ---- nature (art/meshes/gaia): whole plants only, not the trunk and crown parts of split trees.
    # Conifers: pines, firs, cedars, cypresses, junipers.
    "conifer": (
        "gaia/pine[0-9]*",
        "gaia/pine_b",
        "gaia/pine_black_*",
        "gaia/pine_default_*",
        "gaia/tree_pine_*",
        "gaia/fir_*",
        "gaia/cedar_atlas_*",
        "gaia/cypress_mediterranean_wild*",
        "gaia/juniper_prickly_[0-9]",
    ),
    # Broadleaf trees in leaf: oaks, elms, birches, maples, poplars, olives, carobs.
    "broadleaf": (
        "gaia/oak*",
        "gaia/deciduous_*",
        "gaia/tree_deciduous_*",
        "gaia/tree_deci_*",
        "gaia/euro_birch_*",
        "gaia/maple_*",
        "gaia/poplar_*",
        "gaia/lombardy_poplar_*",
        "gaia/tree_elm_*",
        "gaia/tree_olive_*",
        "gaia/kapok_tree_*",
    ),
    # Palms: a bare trunk with a crown of fronds.
    "palm": (
        "gaia/palm_*",
        "gaia/tree_palm_*",
        "gaia/tree_cretan_date_palm_0*",
    ),
    # Leafless trees: bare trunks and branches.
    "dead_tree": (
        "gaia/dead_deciduous*",
        "gaia/tree_dead_*",
        "gaia/eyecandy_tree_dead_*",
    ),
    # Bushes and shrubs: low, wide clumps of foliage.
    "bush": (
        "gaia/bush_*",
        "gaia/medit_bush_*",
        "gaia/berry_bush_*",
        "gaia/temp_bush_*",
        "gaia/juniper_prickly_bush_*",
        "gaia/lavender_bush_*",
        "gaia/acacia_bush_small_*",
        "gaia/wrld_fol_bush_generic_*",
        "gaia/wrld_plant_bush_dry*",
    ),
    # Single rocks and boulders (not the rock piles of stone mines, not cliffs).
    "rock": (
        "gaia/stone_granite_*",
        "gaia/stone_cubic_*",
        "gaia/stone_furrowed_*",
        "gaia/stone_weathered_*",
        "gaia/rock_shoreline_*",
        "gaia/rock_stone_bl*",
        "gaia/wrld_rock_*",
        "gaia/large_stone_a",
        "gaia/rock_scandiv_*",
    ),
    # Mushrooms: a stem and a cap.
    "mushroom": ("gaia/mushrooms/*",),
}
"""Class -> glob patterns (``fnmatch``: ``*`` also crosses ``/``) of mesh names: the member
path under ``art/meshes/`` without ``.dae.cached.pmd``.

Not mapped: skeletal meshes (animals and bodies in their bind pose), heads, armour and horse
gear, the building types whose shapes overlap with houses and fortresses (barracks,
storehouses, markets, stables, farmsteads, docks, civic centres, wonders), siege engines,
carts, quivers, furniture and tools, grass, reeds, ferns and other plants, cliffs, stone mines
and the split trees (a trunk mesh and a crown mesh).
"""

EXCLUDED: dict[str, str] = {
    # parts of buildings and ships split into several meshes, and construction stages
    "structural/*_foundation": "construction stage",
    "structural/*_scaffolding": "construction stage",
    "structural/found_*": "construction stage",
    "*_roof*": "a part (roof) of a split model",
    "*_struct_b": "a part of a split model (its second material)",
    "*_structb": "a part of a split model (its second material)",
    "*_structB": "a part of a split model (its second material)",
    "*_base": "a part (platform) of a split model",
    "*_props*": "a part (props) of a split model",
    "*_nature*": "a part (plants) of a split model",
    "*_plants": "a part (plants) of a split model",
    "*_paintings": "a part (paintings) of a split model",
    "*_shields": "a part (shields) of a split model",
    "*_sail*": "a part (sails) of a split model",
    "*_tent": "a part (tent) of a split model",
    "*_shrouds": "a part (rigging) of a split model",
    "*_door*": "a part (door) of a split model",
    "*_decals": "a part (ground decals) of a split model",
    "structural/han_temple_cauldron": "a part (cauldron) of han_temple",
    "structural/han_temple_lantern": "a part (lantern) of han_temple",
    "structural/kush_temple_amun_back": "a part (back half) of kush_temple_amun",
    "structural/kush_temple_amun_front": "a part (front half) of kush_temple_amun",
    "structural/celt_fortress_base": "a part (ground ring) of a split model",
    "structural/*_siege_*": "a siege engine, not a building",
    "structural/han_ship_tower": "a siege engine, not a ship",
    "structural/pers_ice_house_*": "an ice house (a storage dome), not a dwelling",
    # near-duplicate variants: the same model with another trim
    "props/spear_lance_cavalry_reverse": "spear_lance_cavalry held the other way round",
    "props/weap_spear_rev": "a weap_spear held the other way round",
    "props/weap_pillum_rev": "a weap_pillum held the other way round",
    "props/weap_spear_ball_*": "weap_spear_* with a ball on the tip (training spears)",
    # shields: the fittings and the howdah's row of shields
    "props/shield/props/*": "shield fittings (bosses, grips, rims)",
    "props/shield/howdah_*": "a row of shields on a howdah",
    # helmet folder: what is not a helmet, or only a piece of one
    "props/helmet/props/*": "crests, masks, plumes and wreaths",
    "props/helmet/old/*": "superseded models",
    "props/helmet/head_*": "a head, not a helmet",
    "props/helmet/*hair*": "hair, not a helmet",
    "props/helmet/*turban*": "a turban (cloth)",
    "props/helmet/*_wrap_*": "a head wrap (cloth)",
    "props/helmet/maur_earrings_*": "earrings",
    "props/helmet/*crest*": "a crest or a crown",
    "props/helmet/kush_lion_pelt": "a pelt",
    "props/helmet/han_bandana": "a bandana (cloth)",
    "props/helmet/han_ricehat": "a straw hat",
    "props/helmet/han_cap": "a cloth cap",
    "props/helmet/celt_hood": "a hood (cloth)",
    "props/helmet/celt_mistletoe": "a wreath",
    "props/helmet/hele_straw_01": "a straw hat",
    "props/helmet/hele_kausia_cap_*": "a felt cap",
    "props/helmet/pers_kidaris_*": "a soft tiara (cloth)",
    "props/helmet/pers_neckguard": "a neck guard only",
    "props/helmet/*_snake_*": "the snake of a crown, not a helmet",
    # trees: dead or leafless variants of live ones, split trees' parts, billboards
    "gaia/*_dead": "the leafless variant of a live tree (dead_tree takes only the dedicated models)",
    "gaia/palm_dead_*": "a bare palm trunk (a pole)",
    "gaia/tree_palm_date_dead_*": "a bare palm trunk (a pole)",
    "gaia/*_needles": "a part (needles) of a split tree",
    "gaia/*_branches": "a part (branches) of a split tree",
    "gaia/*_leaves": "a part (leaves) of a split tree",
    "gaia/*_trunk*": "a part (trunk) of a split tree",
    "gaia/*_top*": "a part (crown) of a split tree",
}
"""Names a CLASSES pattern matches but the set leaves out (glob -> why), applied first."""


def mesh_names(archive: zipfile.ZipFile) -> list[str]:
    """The archive's mesh names: members under ``art/meshes/`` ending in ``.dae.cached.pmd``, without both."""
    return sorted(
        info.filename[len(MESH_PREFIX) : -len(MESH_SUFFIX)]
        for info in archive.infolist()
        if info.filename.startswith(MESH_PREFIX) and info.filename.endswith(MESH_SUFFIX) and not info.is_dir()
    )


def member(name: str) -> str:
    """The zip member of a mesh name."""
    return f"{MESH_PREFIX}{name}{MESH_SUFFIX}"


def select(
    names: list[str],
    classes: Mapping[str, tuple[str, ...]] = CLASSES,
    excluded: Mapping[str, str] = EXCLUDED,
) -> tuple[list[Source], dict[str, str]]:
    """The table applied to the mesh names: sources sorted by class and name, and excluded names (name -> why).

    A name matched by two classes is a mistake in the table: DataError.
    """
    sources: list[Source] = []
    left_out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for label, patterns in classes.items():
        for name in names:
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                continue
            if name in owner:
                raise DataError(f"{member(name)}: matched by both {owner[name]!r} and {label!r} in the class table")
            owner[name] = label
            reason = next((why for pattern, why in excluded.items() if fnmatch.fnmatchcase(name, pattern)), None)
            if reason is not None:
                left_out[name] = reason
            else:
                sources.append(Source(label, name))
    return sorted(sources, key=lambda s: (s.label, s.rel)), left_out


def convert(archive: zipfile.ZipFile, sources: list[Source], verbose: bool = False) -> Converted:
    """Read, check and deduplicate the sources' meshes from the archive.

    Left out: unreadable members and meshes, fewer than :data:`MIN_FACES` triangles or a
    :func:`~benchmarks.real_meshes.mesh_problem`, the same file bytes or the same vertex set
    (up to translation and uniform scale) as any mesh kept before, and a near-duplicate cloud
    (:class:`~benchmarks.cloud_dedup.Deduplicator`) of a mesh kept before in the same class.
    """
    out = Converted()
    near = Deduplicator()
    seen_files: dict[str, str] = {}
    seen_shapes: list[tuple[np.ndarray, str]] = []
    start = time.perf_counter()
    for i, source in enumerate(sources, 1):
        if verbose and (i % PROGRESS_EVERY == 0 or i == len(sources)):
            print(f"read {i}/{len(sources)} meshes ({time.perf_counter() - start:.1f} s)", flush=True)
        name = member(source.rel)
        try:
            data = archive.read(name)
        except (zipfile.BadZipFile, OSError) as err:
            out.skipped[source.rel] = f"{name}: unreadable in the zip ({err})"
            continue
        try:
            vertices, faces = read_pmd(data, name)
        except DataError as err:
            out.skipped[source.rel] = str(err)
            continue
        problem = f"{len(faces)} triangles (fewer than {MIN_FACES})" if len(faces) < MIN_FACES else None
        problem = problem or mesh_problem(vertices, faces)
        if problem is not None:
            out.skipped[source.rel] = f"{name}: {problem}"
            continue
        vertices, faces = compact(vertices, faces)
        file_hash = hashlib.sha256(data).hexdigest()
        unit = unit_vertices(vertices)
        first = seen_files.get(file_hash) or next((rel for u, rel in seen_shapes if same_geometry(unit, u)), None)
        if first is None:
            clouds = [
                sample_surface(vertices, faces, DEDUP_POINTS, np.random.default_rng(subsample_seed(source.rel, seed)))
                for seed in (SEED, SEED + 1)
            ]
            match = near.match(source.label, source.rel, file_hash, clouds[0], sampling_noise(*clouds))
            first = match[0] if match is not None else None
        if first is not None:
            out.duplicates[source.rel] = first
            continue
        seen_files[file_hash] = source.rel
        seen_shapes.append((unit, source.rel))
        out.meshes.setdefault(source.label, []).append((source, vertices, faces, file_hash))
    return out


def default_root() -> Path:
    """``$POINTDWC_CACHE/real_meshes/zeroad``."""
    return default_cache_dir() / "real_meshes" / SET_NAME


def build(
    out: Path | None = None,
    force: bool = False,
    min_per_class: int = MIN_PER_CLASS,
    verbose: bool = True,
    zip_path: Path = ZIP_PATH,
    classes: Mapping[str, tuple[str, ...]] = CLASSES,
    excluded: Mapping[str, str] = EXCLUDED,
) -> Path:
    """Build the set (once) and return its root, the folder holding ``train/`` and ``test/``.

    Args:
        out: the root; default :func:`default_root`.
        force: rebuild (and atomically replace) a root this script built before.
        min_per_class: classes with fewer distinct, usable models are dropped.
        verbose: print progress, what was left out and the summary table.
        zip_path: the archive holding ``art/meshes/`` (default the package's ``public.zip``).
        classes: the class table (default :data:`CLASSES`).
        excluded: names the table matches but leaves out (default :data:`EXCLUDED`).
    """
    if min_per_class < MIN_TEST + 1:
        raise DataError(f"min_per_class must be at least {MIN_TEST + 1} ({MIN_TEST} test shapes and one to train)")
    root = Path(out).expanduser().absolute() if out is not None else default_root()
    if already_built(root, PACKAGE, {"layout_version": LAYOUT_VERSION, "min_per_class": min_per_class}, force, verbose):
        return root
    if not zip_path.is_file():
        raise DataError(f"{zip_path}: missing; install the Debian package {PACKAGE} (as root): {INSTALL_COMMAND}")
    start = time.perf_counter()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{zip_path}: not a readable zip ({err}); reinstall {PACKAGE}: {INSTALL_COMMAND}") from None
    with archive:
        names = mesh_names(archive)
        if not names:
            raise DataError(f"{zip_path}: no {MESH_PREFIX}**{MESH_SUFFIX} meshes; is this {PACKAGE}'s public.zip?")
        sources, left_out = select(names, classes, excluded)
        if verbose:
            print(f"{zip_path}: {len(names)} meshes, {len(sources) + len(left_out)} mapped to classes, "
                  f"{len(left_out)} excluded by the table; reading {len(sources)}", flush=True)
        converted = convert(archive, sources, verbose)
    # Replace only what was there when we looked (ours with force, or an empty folder): a
    # root that a concurrent run finishes meanwhile is kept, as a reader may have it open.
    with atomic_directory(root, replace=root.exists()) as tmp:
        manifest = write_set(tmp, converted, left_out, min_per_class, classes, PACKAGE, LAYOUT_VERSION)
    if verbose:
        report_build(root, converted, manifest, PACKAGE, TESTED_VERSION,
                     "same file, same geometry or near-duplicate cloud of", start)
    return root


def main(argv: list[str] | None = None) -> int:
    """Command line: build the set (or report the one there) and print the table."""
    parser = set_parser(__doc__, default_root(), MIN_PER_CLASS)
    parser.add_argument("--zip", type=Path, default=ZIP_PATH, help=f"{PACKAGE}'s public.zip (default {ZIP_PATH})")
    args = parser.parse_args(argv)
    return exit_status(lambda: build(args.out, force=args.force, min_per_class=args.min_per_class, zip_path=args.zip))


if __name__ == "__main__":
    sys.exit(main())
