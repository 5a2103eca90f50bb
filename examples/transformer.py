"""A transformer encoder block written the Gluon way (post-norm, as in the
original paper): multi-head self-attention with softmax, residual adds,
layer norm and a GELU feed-forward network.

    python examples/transformer.py      # runs a 12-block stack, eager and hybridized
"""
import math

from tracer import np, npx
from tracer.gluon import nn


class MultiHeadAttention(nn.HybridBlock):
    def __init__(self, d_model, heads):
        super().__init__()
        if d_model % heads:
            raise ValueError(f'd_model {d_model} is not divisible by heads {heads}')
        self._heads, self._dk = heads, d_model // heads
        self.query = nn.Dense(d_model, flatten=False, in_units=d_model)
        self.key = nn.Dense(d_model, flatten=False, in_units=d_model)
        self.value = nn.Dense(d_model, flatten=False, in_units=d_model)
        self.proj = nn.Dense(d_model, flatten=False, in_units=d_model)

    def _split(self, x):
        b, t, _ = x.shape
        return x.reshape(b, t, self._heads, self._dk).transpose(0, 2, 1, 3)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(self._dk))
        attn = npx.softmax(scores, axis=-1)
        out = np.matmul(attn, v).transpose(0, 2, 1, 3).reshape(b, t, d)
        return self.proj(out)


class EncoderBlock(nn.HybridBlock):
    def __init__(self, d_model=256, heads=4, ffn=1024):
        super().__init__()
        self.attention = MultiHeadAttention(d_model, heads)
        self.norm1 = nn.LayerNorm(in_channels=d_model)
        self.ffn1 = nn.Dense(ffn, flatten=False, in_units=d_model)
        self.ffn2 = nn.Dense(d_model, flatten=False, in_units=ffn)
        self.norm2 = nn.LayerNorm(in_channels=d_model)

    def forward(self, x):
        x = self.norm1(x + self.attention(x))
        h = self.ffn2(npx.gelu(self.ffn1(x)))
        return self.norm2(x + h)


def encoder_stack(blocks=12, d_model=256, heads=4, ffn=1024):
    net = nn.HybridSequential()
    for _ in range(blocks):
        net.add(EncoderBlock(d_model, heads, ffn))
    net.initialize()
    return net


if __name__ == '__main__':
    import time

    import numpy as onp

    import tracer
    net = encoder_stack(12)
    x = np.random.normal(size=(2, 16, 256))
    t = time.perf_counter()
    ref = net(x)
    print(f'eager forward: {1e3 * (time.perf_counter() - t):.1f} ms')
    net.hybridize()
    t = time.perf_counter()
    y = net(x)
    print(f'first hybridized call (trace + passes): {1e3 * (time.perf_counter() - t):.1f} ms')
    print('max |hybridized - eager|:', float(onp.abs(y.asnumpy() - ref.asnumpy()).max()))
    ex = tracer.explain(net, x)
    for r in ex.passes:
        print(r)
