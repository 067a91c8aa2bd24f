"""RandAugment on the device: the loader path's pixels, each image its own draws."""

import torch
from torch.utils.data import DataLoader

from tests.helpers import tiny_datamodule as datamodule


def test_augmentation_on_the_device_matches_the_loader_path(tiny_root, tmp_path):
    cpu = datamodule(tiny_root, tmp_path, imbalance="oversample", batch_size=8)
    gpu = datamodule(tiny_root, tmp_path, imbalance="oversample", batch_size=8, augment_on="gpu")
    cpu.setup("fit")
    gpu.setup("fit")
    # val and test are read outside the device hooks too (calibration, trainer.test with
    # loaders passed in): they come normalised, the same as the CPU path's
    images, labels = next(iter(cpu.val_dataloader()))
    val = next(iter(gpu.val_dataloader()))
    assert len(val) == 2 and torch.equal(val[1], labels) and torch.allclose(val[0], images)
    assert torch.allclose(
        next(iter(gpu.test_dataloader()))[0], next(iter(cpu.test_dataloader()))[0]
    )
    # the training images come as uint8 with their copies' seeds (0: the original, not
    # augmented); the device hook normalises them as the CPU path does
    raw = next(iter(DataLoader(gpu.datasets["train"], batch_size=8)))
    assert raw[0].dtype == torch.uint8 and not raw[2].any()
    finished, same_labels = gpu.on_after_batch_transfer(raw, 0)
    plain, plain_labels = next(iter(DataLoader(cpu.datasets["train"], batch_size=8)))
    assert torch.equal(same_labels, plain_labels) and torch.allclose(finished, plain, atol=1e-6)
    train = gpu.datasets["train"]
    augmented = torch.stack([train[len(train)][0]] * 2)
    torch.manual_seed(0)
    out, _ = gpu.on_after_batch_transfer(
        (augmented, torch.tensor([0, 0]), torch.tensor([True, False])), 0
    )
    plain = train.pipeline.normalize(augmented[1])
    assert torch.allclose(out[1], plain) and not torch.allclose(out[0], plain)


def test_batched_randaugment_gives_each_image_its_own_draws():
    from torchvision.transforms import v2

    from src.data.transforms import apply_randaugment, draw_randaugment

    randaugment = v2.RandAugment(num_ops=2, magnitude=9)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (24, 3, 20, 20), dtype=torch.uint8)
    draws = draw_randaugment(randaugment, len(images))
    batched = apply_randaugment(randaugment, images, draws)
    one_by_one = torch.cat(
        [
            apply_randaugment(
                randaugment, images[i : i + 1], [(o[i : i + 1], n[i : i + 1]) for o, n in draws]
            )
            for i in range(len(images))
        ]
    )
    assert torch.equal(batched, one_by_one)  # grouping changes nothing
    assert len(torch.unique(draws[0][0])) > 3  # images drew different ops
    same = images[:1].expand(24, -1, -1, -1)
    outputs = apply_randaugment(randaugment, same, draw_randaugment(randaugment, 24))
    assert len({o.numpy().tobytes() for o in outputs}) > 3
