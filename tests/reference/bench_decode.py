"""Reference for benches/embed.rs: decode every JPEG in a directory with PIL, convert to RGB,
normalise (x - 127.5) / 127.5 into CHW float32 and mirror it; print images per second."""
import os
import sys
import time

try:
    import numpy as np
    from PIL import Image
except ImportError as e:  # the bench prints this as a skip
    sys.exit(f"needs numpy and Pillow: {e}")

d = sys.argv[1]
files = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".jpg")]
t = time.perf_counter()
for f in files:
    a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)
    x = ((a - 127.5) / 127.5).transpose(2, 0, 1)
    flipped = np.ascontiguousarray(x[:, :, ::-1])
print(len(files) / (time.perf_counter() - t))
