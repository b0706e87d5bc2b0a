"""The PyTorch reference: the same model, built from PyTorch's own layers, trained the same way.

Only `npformer bench` imports this module, and it imports torch lazily, so npformer itself
never needs PyTorch (install it with `pip install torch==2.13.0`, pinned: an unpinned torch
pulls a multi-GB CUDA build).

    nn.Embedding * sqrt(D) + sinusoidal PE -> dropout -> nn.TransformerEncoder/Decoder
    (batch_first, post-norm, ReLU) -> nn.Linear -> CrossEntropyLoss(ignore_index=pad),
    torch.optim.Adam(betas=(0.9, 0.98), eps=1e-9)

Two differences from npformer are PyTorch's own layers' and are kept: they also apply dropout
to the attention weights and between the two feed-forward linears (npformer, like the
paper's text, only to each sublayer's output and to the embedding sums), so with dropout on
PyTorch draws two more masks per sublayer. The initial distributions are npformer's
(init_like_npformer), so both train the same model from the same kind of start.
"""

import math

from npformer.layers.positional import sinusoid_table


def require_torch():
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def build(cfg, device="cpu", seed=0, lr=1e-3):
    """cfg: an npformer config dict. Returns a TorchReference ready to train."""
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class TorchTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            D, p = cfg["d_model"], cfg["dropout"]
            self.src_embed = nn.Embedding(cfg["src_vocab"], D)
            self.tgt_embed = nn.Embedding(cfg["tgt_vocab"], D)
            self.register_buffer("pe", torch.tensor(sinusoid_table(cfg["max_len"], D), dtype=torch.float32))
            self.drop = nn.Dropout(p)
            enc = nn.TransformerEncoderLayer(D, cfg["n_heads"], cfg["d_ff"], p, batch_first=True, norm_first=False)
            dec = nn.TransformerDecoderLayer(D, cfg["n_heads"], cfg["d_ff"], p, batch_first=True, norm_first=False)
            self.encoder = nn.TransformerEncoder(enc, cfg["n_layers"], enable_nested_tensor=False)
            self.decoder = nn.TransformerDecoder(dec, cfg["n_layers"])
            self.generator = nn.Linear(D, cfg["tgt_vocab"])
            self.scale = math.sqrt(D)
            self.pad = cfg["pad_id"] if "pad_id" in cfg else 0

        def encode(self, src):
            src_pad = src == self.pad                                            # (B,S) True = hidden
            x = self.drop(self.src_embed(src) * self.scale + self.pe[:src.shape[1]])
            return self.encoder(x, src_key_padding_mask=src_pad), src_pad

        def decode(self, tgt_in, memory, src_pad):
            T = tgt_in.shape[1]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt_in.device), 1)  # (T,T)
            y = self.drop(self.tgt_embed(tgt_in) * self.scale + self.pe[:T])
            y = self.decoder(y, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_in == self.pad,
                             memory_key_padding_mask=src_pad)
            return self.generator(y)                                             # (B,T,V)

        def forward(self, src, tgt_in):
            return self.decode(tgt_in, *self.encode(src))

    model = TorchTransformer()
    init_like_npformer(torch, model, cfg["d_model"])
    return TorchReference(torch, model.to(device), device, lr)


def init_like_npformer(torch, model, d_model):
    """The same initial distributions as npformer, so that both train the same model: Glorot
    uniform for every weight matrix, zero biases, embeddings N(0, 1/D) (so sqrt(D) * W has unit
    variance, like the positional table). PyTorch's own defaults differ: N(0, 1) embeddings
    times sqrt(D) drown the positional encoding and slow this task's training several-fold."""
    nn = torch.nn
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, 0.0, d_model ** -0.5)
            elif "norm" in name:
                continue                                         # LayerNorm: gamma 1, beta 0 already
            elif name.endswith("in_proj_weight"):
                for block in p.split(d_model):                   # Wq, Wk, Wv: three (D, D) Glorot draws
                    nn.init.xavier_uniform_(block)
            elif p.dim() == 2:
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)


class TorchReference:
    """One training step of the PyTorch model on host batches, and greedy decoding."""

    def __init__(self, torch, model, device, lr):
        self.torch, self.model, self.device = torch, model, device
        self.loss_fn = torch.nn.CrossEntropyLoss(ignore_index=0)
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)

    def to_device(self, batch):
        return tuple(self.torch.as_tensor(a, device=self.device) for a in batch)

    def step(self, batch, lr=None, clip=0.0):
        """batch: device tensors from to_device. Returns the loss tensor (not synchronised)."""
        src, tgt_in, tgt_out = batch
        self.model.train()
        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(src, tgt_in)                                       # (B,T,V)
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        loss.backward()
        if clip > 0:
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.opt.step()
        return loss.detach()

    def greedy_decode(self, src, max_len=20, bos_id=1, eos_id=2):
        """npformer's greedy_decode for the PyTorch model: host (B, L) ids, pad after each EOS.
        The whole prefix is decoded again at every step (PyTorch's layers keep no cache)."""
        torch, pad = self.torch, self.loss_fn.ignore_index
        self.model.eval()
        with torch.no_grad():
            src = torch.as_tensor(src, device=self.device)
            memory, src_pad = self.model.encode(src)
            ys = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=self.device)
            done = torch.zeros(src.shape[0], dtype=torch.bool, device=self.device)
            for _ in range(max_len):
                nxt = self.model.decode(ys, memory, src_pad)[:, -1].argmax(-1)  # (B,)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                ys = torch.cat([ys, nxt[:, None]], dim=1)
                done |= nxt == eos_id
                if bool(done.all()):
                    break
        return ys[:, 1:].cpu().numpy()

    def synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()
