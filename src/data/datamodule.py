"""LightningDataModule for the rare-species images (real or synthetic, same format)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from src.data.cache import CacheSpec, DecodedCache, ensure_cache
from src.data.dataset import RareSpeciesDataset
from src.data.images import DEFAULT_MAX_PIXELS, NON_RGB_POLICIES
from src.data.sampling import (
    EpochSampler,
    OversampleSampler,
    ShuffleSampler,
    balanced_class_weights,
    check_imbalance,
)
from src.data.scan import CHECKS_FILE, check_images
from src.data.schema import (
    METADATA_FILE,
    check_target,
    class_names,
    phylum_of,
    read_index,
    species_names,
    with_target,
)
from src.data.selection import (
    TEST_SETS,
    all_rows,
    check_kept,
    classes_without_training_rows,
    named_row_sets,
    without_files,
)
from src.data.split import SPLITS, load_or_make_split, write_split
from src.data.synthetic import ensure_synthetic
from src.data.taxonomy import class_taxonomy
from src.data.transforms import RANDAUGMENT, UNIT_RANGE, ImagePipeline, check_variant
from src.errors import UserFacingError, check_choice, check_whole_number
from src.runs.files import write_csv

log = logging.getLogger(__name__)
BAD_IMAGE_POLICIES = ("error", "skip")
BAD_IMAGES_FILE = "bad_images.csv"


class BadImagesError(UserFacingError, RuntimeError):
    """Some rows point at images that cannot be used and data.on_bad_image=error."""


class RareSpeciesDataModule(pl.LightningDataModule):
    """Index -> stratified split -> checked rows -> datasets and loaders.

    Args mirror ``conf/data/rarespecies.yaml``; the normalisation (``mean``, ``std``,
    ``interpolation``) comes from the model's data config via :meth:`use_data_config`.
    ``synthetic`` (a dict of :func:`~src.data.synthetic.ensure_synthetic` arguments) makes
    ``prepare_data`` write a synthetic data set into ``root`` when it is not there yet.
    """

    def __init__(
        self,
        root: str,
        target: str = "family",
        image_size: int = 224,
        preprocess: str = "original",
        imbalance: str = "none",
        randaugment: dict | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        split: dict | None = None,
        split_dir: str | None = None,
        on_bad_image: str = "error",
        on_non_rgb: str = "convert",
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        fast_decode: bool = True,
        output_dir: str | None = None,
        synthetic: dict | None = None,
        metadata_file: str = METADATA_FILE,
        seed: int = 0,
        keep_index: str | None = None,
        filter_eval: bool = True,
        cache: bool = False,
        cache_dir: str | None = None,
        augment_on: str = "cpu",
        feature_cache: bool = False,
        feature_bank_views: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.target = check_target(target)
        self.imbalance = check_imbalance(imbalance)
        self.preprocess = check_variant(preprocess)
        check_choice("data.on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)
        check_choice("data.on_non_rgb", on_non_rgb, NON_RGB_POLICIES)
        self.image_size = check_whole_number("data.image_size", image_size, 1)
        self.randaugment = dict(randaugment or RANDAUGMENT)
        self.batch_size = check_whole_number("data.batch_size", batch_size, 1)
        self.num_workers = check_whole_number("data.num_workers", num_workers, 0)
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.persistent_workers = persistent_workers and num_workers > 0
        self.split_args = dict(split or {})
        self.split_dir = Path(split_dir) if split_dir else None
        self.on_bad_image = on_bad_image
        self.on_non_rgb = on_non_rgb
        self.max_image_pixels = int(max_image_pixels)
        self.fast_decode = fast_decode
        self.output_dir = Path(output_dir) if output_dir else None
        self.synthetic = dict(synthetic) if synthetic else None
        self.metadata_file = metadata_file
        self.seed = seed
        self.keep_index = Path(keep_index).expanduser() if keep_index else None
        self.filter_eval = filter_eval
        # banked views are backbone features, so asking for them asks for the feature path
        self.feature_bank_views = check_whole_number(
            "data.feature_bank_views", feature_bank_views, 0
        )
        self.feature_cache = feature_cache or self.feature_bank_views > 0
        self.use_cache = cache
        self.augment_on = check_choice("data.augment_on", augment_on, ("cpu", "gpu"))
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.data_config: dict[str, Any] = dict(UNIT_RANGE)
        self.index: pd.DataFrame | None = None  # read by setup (or load_index)
        self.rows: dict[str, pd.DataFrame] = {}  # the named row sets, made by setup
        self.datasets: dict[str, RareSpeciesDataset] = {}
        self.bad_images = pd.DataFrame()

    # ---- index and classes -------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.synthetic is not None:  # a species target gets species that look different
            ensure_synthetic(self.root, **{"target": self.target, **self.synthetic})

    def load_index(self) -> pd.DataFrame:
        """Read (and check) ``<root>/<metadata_file>``; the classes come from it.

        The index has a column for the target from here on, whatever rank it is (``species``
        from ``eol_page_id`` when the file has none), so every ``rows[self.target]`` works.
        """
        self.index = with_target(read_index(self.root / self.metadata_file), self.target)
        return self.index

    @property
    def class_names(self) -> list[str]:
        if self.index is None:
            raise RuntimeError("The index is not read yet: call prepare_data() and setup().")
        return class_names(self.index, self.target)

    @property
    def taxonomy(self) -> dict[str, list[str]]:
        """Each rank above the target at which the classes differ, nearest first -> the group
        of every class (what answers and the hierarchical loss work with)."""
        return class_taxonomy(self.index, self.target, self.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def test_sets(self) -> list[str]:
        """The named test sets: ``test``, and ``test_full`` when val/test were filtered."""
        return [name for name in TEST_SETS if name in self.rows]

    def labels_of(self, rows: pd.DataFrame) -> list[int]:
        lookup = {name: i for i, name in enumerate(self.class_names)}
        return [lookup[name] for name in rows[self.target].astype(str)]

    def use_data_config(self, data_config: dict[str, Any]) -> None:
        """Take mean/std/interpolation from the model (timm's ``resolve_model_data_config``)."""
        self.data_config = {k: data_config[k] for k in ("mean", "std", "interpolation")}
        self.datasets = {}  # rebuilt with the new normalisation at the next setup

    # ---- setup: which rows, then the datasets ------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Read the index, split, filter and scan once; (re)build the datasets when needed."""
        if not self.rows:
            self.rows = self._select_rows()
            counts = ", ".join(f"{n} {len(self.rows[n]):,}" for n in SPLITS)
            log.info("%s: %d classes (%s); %s", self.root, self.num_classes, self.target, counts)
        if not self.datasets:
            self.datasets = self._build_datasets()

    def _select_rows(self) -> dict[str, pd.DataFrame]:
        """See :mod:`src.data.selection`; this reads the files it needs and scans the images."""
        index = self.load_index()
        splits = load_or_make_split(index, self._split_dir(), target=self.target, **self.split_args)
        if self.output_dir and self._split_dir() != self.output_dir / "split":  # copy for the run
            write_split(splits, self.output_dir / "split")
        kept = self._read_kept(index) if self.keep_index else None
        named = named_row_sets(splits, kept, self.filter_eval)
        lost = classes_without_training_rows(splits, named, self.target)
        if lost:
            log.warning(
                "No training image left after filtering for: %s (the model keeps "
                "their outputs; they cannot be learned).",
                ", ".join(lost),
            )
        self.bad_images = self._find_bad_images(all_rows(named))
        return without_files(named, self.bad_images["file_path"])

    def _split_dir(self) -> Path | None:
        if self.split_dir is not None:
            return self.split_dir
        return self.output_dir / "split" if self.output_dir else None

    def _read_kept(self, index: pd.DataFrame) -> list[str]:
        kept = read_index(self.keep_index)["file_path"].tolist()
        check_kept(kept, index, str(self.keep_index), str(self.root / self.metadata_file))
        return kept

    def _find_bad_images(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Unusable images among ``rows``: stop, or report them and let them be left out."""
        checks = check_images(
            (self.root / p for p in rows["file_path"]),
            max_pixels=self.max_image_pixels,
            on_non_rgb=self.on_non_rgb,
            cache_file=(self.cache_dir or self.root) / CHECKS_FILE,
        )
        reasons = pd.Series([c.reason for c in checks], index=rows.index)
        bad = rows[reasons.notna()].assign(reason=reasons[reasons.notna()])
        if bad.empty:
            return bad
        summary = ", ".join(f"{k} {v}" for k, v in bad["reason"].value_counts().items())
        examples = "; ".join(f"{r.file_path} ({r.reason})" for r in bad.head(3).itertuples())
        if self.on_bad_image == "error":
            raise BadImagesError(
                f"{len(bad)} of {len(rows)} images under {self.root} cannot be used "
                f"({summary}), e.g. {examples}. Fix or remove them, or set "
                "data.on_bad_image=skip to leave them out (listed in bad_images.csv)."
            )
        if self.output_dir is not None:
            write_csv(bad, self.output_dir / BAD_IMAGES_FILE)
        log.warning(
            "Skipping %d unusable images (%s); listed in %s.",
            len(bad),
            summary,
            self.output_dir / BAD_IMAGES_FILE if self.output_dir else "bad_images",
        )
        return bad

    def decoded_cache(self, build: bool = True) -> DecodedCache:
        """The decode-once cache of every image of the index, at this size and resize."""
        spec = CacheSpec(
            self.image_size,
            self.data_config["interpolation"],
            self.fast_decode,
            self.max_image_pixels,
        )
        index = self.index if self.index is not None else self.load_index()
        return ensure_cache(
            self.root,
            index["file_path"].tolist(),
            spec,
            self.cache_dir,
            workers=max(1, self.num_workers),
        )

    def _build_datasets(self) -> dict[str, RareSpeciesDataset]:
        cache = self.decoded_cache() if self.use_cache else None
        pipeline = ImagePipeline(
            image_size=self.image_size,
            variant=self.preprocess,
            randaugment=self.randaugment,
            **self.data_config,
        )
        return {
            name: RareSpeciesDataset(
                self.root,
                rows,
                self.labels_of(rows),
                pipeline,
                max_pixels=self.max_image_pixels,
                on_non_rgb=self.on_non_rgb,
                fast_decode=self.fast_decode,
                cache=cache,
                # only training images are augmented; the others are also read outside the
                # data module's device hooks (the test sets by trainer.test with loaders
                # passed in, val by the calibration), so they arrive normalised
                defer=self.augment_on == "gpu" and name == "train",
            )
            for name, rows in self.rows.items()
        }

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """With data.augment_on=gpu the augmentation flags stay on the CPU (no GPU sync)."""
        if len(batch) != 3:
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        images, labels, augment = batch
        moved = super().transfer_batch_to_device([images, labels], device, dataloader_idx)
        return [*moved, augment]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """With data.augment_on=gpu: RandAugment and normalise the batch where it now is."""
        if len(batch) != 3:
            return batch
        images, labels, seeds = batch  # 0: original; otherwise the copy's seed (or a flag)
        augment = seeds != 0
        with torch.random.fork_rng(devices=[]):  # this batch's draws follow its copies' seeds
            torch.manual_seed(int(seeds.long().sum()) % 2**62)
            return self.datasets["train"].pipeline.finish_batch(images, augment), labels

    # ---- imbalance ---------------------------------------------------------------------
    @property
    def class_weights(self) -> torch.Tensor | None:
        """Loss weights when data.imbalance asks for them (from the training counts)."""
        if self.imbalance not in ("class_weights", "both"):
            return None
        return balanced_class_weights(self.labels_of(self.rows["train"]), self.num_classes)

    def train_sampler(self) -> OversampleSampler | None:
        if self.imbalance not in ("oversample", "both"):
            return None
        return OversampleSampler(self.datasets["train"].labels, seed=self.seed)

    def epoch_sampler(self, trainer: pl.Trainer | None = None) -> EpochSampler:
        """The training order: oversampled or shuffled, from (seed, epoch) alone.

        Lightning builds a resumed run's first loader before it calls ``set_epoch``; a run
        resumed from a checkpoint saved mid-epoch (SIGTERM) skips the batches already done.
        """
        sampler = self.train_sampler() or ShuffleSampler(len(self.datasets["train"]), self.seed)
        trainer = trainer or getattr(self, "trainer", None)
        if trainer is None:
            return sampler
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.is_last_batch:  # restored at the end of an epoch: the next one comes
            sampler.set_epoch(trainer.current_epoch + 1)
        else:  # a new run (nothing done), or restored mid-epoch: skip what was done
            sampler.set_epoch(trainer.current_epoch)
            sampler.resume(trainer.current_epoch, progress.current.processed * self.batch_size)
        return sampler

    # ---- loaders -----------------------------------------------------------------------
    def _loader(self, name: str, sampler=None) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            # workers' seeds come from here, not from the global generator that a resumed
            # run restores: loaders never shift the model's random numbers
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", sampler=self.epoch_sampler())

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self, name: str = "test") -> DataLoader:
        """The loader of one named test set (see :attr:`test_sets`)."""
        return self._loader(check_choice("test set", name, self.test_sets))

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: enough to name predictions and rebuild the pixels.

        ``phylum`` maps each class to its phylum (empty for a phylum or kingdom target);
        ``names`` each species to its scientific and common name, when the index has them.
        """
        return {
            "class_names": self.class_names,
            "target": self.target,
            "image_size": self.image_size,
            "preprocess": self.preprocess,
            "data_config": self.data_config,
            "phylum": phylum_of(self.index, self.target),
            "names": species_names(self.index, self.target),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("class_names") not in (None, self.class_names):
            raise ValueError(
                "The checkpoint was trained on other classes than this data set has; "
                "point data.root at the data it was trained on."
            )
