"""Loader side of batch augmentation: workers only read each image and letterbox it, as uint8."""
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from ..data_augment import PAD_VALUE
from .datasets_wrapper import Dataset, split_index


class ReadCropDataset(Dataset):
    """Items (uint8 [H, W, 3] image letterboxed top-left with 114, [n, 5] xyxy+class rows, meta, img_id).

    meta holds batch_augment.META_COLUMNS: the sampler's mosaic flag, the sample seed (-1 when unset), the image's
    height and width inside the letterbox and its box count. BatchAugment does the rest on the batch.
    """

    def __init__(self, dataset, img_size: Sequence[int], mosaic: bool = True):
        super().__init__(img_size, mosaic=mosaic)
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index):
        mosaic, real_index, sample_seed = split_index(index)
        mosaic = self.enable_mosaic if mosaic is None else mosaic
        img, labels, _, img_id = self._dataset.pull_item(real_index)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        height, width = self.input_dim
        ratio = min(height / img.shape[0], width / img.shape[1])
        labels = np.asarray(labels, dtype=np.float32).reshape(-1, 5)
        if ratio != 1:  # pull_item normally fits the image already
            size = (int(img.shape[1] * ratio), int(img.shape[0] * ratio))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            labels[:, :4] *= ratio
        canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
        canvas[: img.shape[0], : img.shape[1]] = img
        meta = torch.tensor([int(mosaic), -1 if sample_seed is None else int(sample_seed), img.shape[0],
                             img.shape[1], len(labels)], dtype=torch.int64)
        return torch.from_numpy(canvas), torch.from_numpy(labels), meta, img_id


def collate_read_crop(items: List[Tuple]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """Stack images and meta; zero-pad the label rows to the batch's largest count (at least one row)."""
    rows = max(1, max(len(item[1]) for item in items))
    padded = [torch.cat((item[1], item[1].new_zeros(rows - len(item[1]), 5))) for item in items]
    images = default_collate([item[0] for item in items])
    return images, default_collate(padded), default_collate([item[2] for item in items]), [item[3] for item in items]
