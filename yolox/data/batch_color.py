"""HSV jitter of a batch of BGR images with torch ops, in OpenCV's 8-bit HSV units (H in [0, 180))."""
import torch

HSV_GAINS = (5.0, 30.0, 30.0)  # upstream's hgain, sgain, vgain


def bgr_to_hsv8(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] BGR 0-255 -> [B, 3, H, W] integer-valued H (0-179), S, V (0-255), as OpenCV's 8-bit conversion."""
    blue, green, red = images.unbind(1)
    value = torch.maximum(torch.maximum(blue, green), red)
    spread = value - torch.minimum(torch.minimum(blue, green), red)
    safe_spread = spread.clamp(min=1e-6)
    saturation = torch.where(value > 0, spread * 255.0 / value.clamp(min=1e-6), torch.zeros_like(value))
    hue = torch.where(value == red, 60.0 * (green - blue) / safe_spread,
                      torch.where(value == green, 120.0 + 60.0 * (blue - red) / safe_spread,
                                  240.0 + 60.0 * (red - green) / safe_spread))
    hue = torch.where(spread > 0, hue, torch.zeros_like(hue))
    hue = torch.remainder((torch.remainder(hue, 360.0) / 2.0).round(), 180.0)
    return torch.stack((hue, saturation.round(), value), dim=1)


def hsv8_to_bgr(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of bgr_to_hsv8 (rounded to integers)."""
    hue, saturation, value = hsv.unbind(1)
    sector = hue / 30.0  # OpenCV's 8-bit hue is degrees / 2, one sector is 60 degrees
    chroma = value * saturation / 255.0

    def channel(offset: float) -> torch.Tensor:
        k = torch.remainder(offset + sector, 6.0)
        return value - chroma * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    return torch.stack((channel(1.0), channel(3.0), channel(5.0)), dim=1).round().clamp(0, 255)


def jitter_hsv(images: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Shift hue (mod 180), saturation and value (clipped to 0-255) of each image by its integer gains [B, 3]."""
    hsv = bgr_to_hsv8(images)
    shift = gains.to(images.dtype)[:, :, None, None]
    hue = torch.remainder(hsv[:, 0:1] + shift[:, 0:1], 180.0)
    rest = (hsv[:, 1:] + shift[:, 1:]).clamp(0, 255)
    return hsv8_to_bgr(torch.cat((hue, rest), dim=1))
