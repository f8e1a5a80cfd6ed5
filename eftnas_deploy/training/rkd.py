"""Relational knowledge distillation (Park et al., 2019) between a batch's student and teacher vectors.

Distance-wise: pairwise Euclidean distances, each set divided by its mean over the pairs, compared with
smooth L1. Angle-wise: the cosines of the angles at every anchor j of the triplets (i, j, k), compared with
smooth L1. Both are invariant to scaling either representation; the student's may differ in width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _normalised_distances(x: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, x)
    off = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    mean = d[off].mean()
    return d[off] / mean.clamp_min(1e-12)


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Smooth L1 between the mean-normalised pairwise distances of `student` and `teacher` ([batch, dim])."""
    if student.shape[0] < 2:
        return student.sum() * 0.0
    return F.smooth_l1_loss(_normalised_distances(student.float()), _normalised_distances(teacher.float()))


def _angles(x: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(x[None, :, :] - x[:, None, :], p=2, dim=2)  # [j, i, :] unit vector from anchor j to i
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)  # cos angle(i, j, k) for every anchor j


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Smooth L1 between the cosines of all triplet angles of `student` and `teacher` ([batch, dim])."""
    if student.shape[0] < 3:
        return student.sum() * 0.0
    return F.smooth_l1_loss(_angles(student.float()), _angles(teacher.float()))


def rkd_loss(
    student: torch.Tensor, teacher: torch.Tensor, distance_weight: float = 1.0, angle_weight: float = 2.0
) -> torch.Tensor:
    """distance_weight * distance loss + angle_weight * angle loss (Park et al.'s 1 and 2); teacher detached."""
    teacher = teacher.detach()
    return distance_weight * rkd_distance(student, teacher) + angle_weight * rkd_angle(student, teacher)
