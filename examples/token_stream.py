"""Token streaming: generate text one token at a time, each step fed the token it just produced.

streamlstm has no embedding layer yet, so the token id goes in through a one-hot front end: the
frame is a vocabulary-sized vector with a single 1, and the first LSTM's input product picks
that token's column of its weights. (The step still multiplies the whole vector; an embedding
layer would read one column.) The network's state carries the whole context, so each new token
costs one step, not a pass over the text so far.

The model is a character-level LSTM with random weights: it shows the streaming loop, not
fluent text. Load a trained one with ``sl.load`` (its input size must be the vocabulary size).

Run:  python examples/token_stream.py [--tokens N] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import string

import numpy as np

import streamlstm as sl

VOCAB = string.ascii_lowercase + " .,"


def char_model(vocab: int = len(VOCAB), hidden: int = 64, seed: int = 0) -> sl.Model:
    """one-hot(vocab) -> LSTM -> Dense(vocab) -> Softmax: P(next token)."""
    rng = np.random.default_rng(seed)
    return sl.Model(sl.Network([
        sl.LSTM(W=rng.normal(size=(1, 4 * hidden, vocab)), R=rng.normal(size=(1, 4 * hidden, hidden)) / np.sqrt(hidden),
                Wb=rng.normal(size=(1, 4 * hidden)) * 0.1),
        sl.Dense(W=rng.normal(size=(vocab, hidden)) * 2 / np.sqrt(hidden), b=np.zeros(vocab)),
        sl.Activation("Softmax"),
    ]))


class TokenStream:
    """One generation stream: feed token ids, read the next-token distribution."""

    def __init__(self, model: sl.Model):
        self.session = model.session()
        self.frame = np.zeros(model.input_size, np.float32)
        self.probs = np.empty(model.output_size, np.float32)

    def feed(self, token: int) -> np.ndarray:
        """Advance by one token; returns P(next token) (a view, overwritten by the next feed)."""
        if not 0 <= token < self.frame.size:
            raise ValueError(f"token {token} outside the vocabulary of {self.frame.size}")
        self.frame[:] = 0.0
        self.frame[token] = 1.0
        return self.session.step(self.frame, out=self.probs)


def generate(model: sl.Model, prompt: list[int], tokens: int, seed: int = 0) -> list[int]:
    """Feed ``prompt``, then sample ``tokens`` more, each fed back as the next input."""
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    rng = np.random.default_rng(seed)
    stream = TokenStream(model)
    for t in prompt:
        probs = stream.feed(t)
    out = []
    for _ in range(tokens):
        p = probs.astype(np.float64)
        nxt = int(rng.choice(p.size, p=p / p.sum()))
        out.append(nxt)
        probs = stream.feed(nxt)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=80)
    ap.add_argument("--prompt", default="the ")
    a = ap.parse_args(argv)
    if a.tokens < 0:
        ap.error("--tokens must be >= 0")
    unknown = sorted(set(a.prompt) - set(VOCAB))
    if unknown or not a.prompt:
        ap.error(f"the prompt must be non-empty text over {VOCAB!r}; unknown: {unknown}")
    ids = generate(char_model(), [VOCAB.index(c) for c in a.prompt], a.tokens)
    print(a.prompt + "".join(VOCAB[i] for i in ids))


if __name__ == "__main__":
    main()
