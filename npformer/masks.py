"""Masks, as boolean "keep" arrays (True = this key may be attended to).  docs: derivations/attention.md

They broadcast against attention scores of shape (B,H,T,S):
    padding_keep(src)  (B,1,1,S)  hides padded keys (encoder self-attention, cross-attention)
    causal_keep(T)     (1,1,T,T)  position t sees positions <= t (the "subsequent" mask)
    target_keep(tgt)   (B,1,T,T)  both, for decoder self-attention
"""

from npformer.backend import get_backend, get_xp


def padding_keep(ids, pad_id):
    """ids (B,S) -> (B,1,1,S): True where the token is not padding."""
    return (ids != pad_id)[:, None, None, :]                     # (B,1,1,S)


def causal_keep(T, xp=None):
    """(1,1,T,T): True on and below the diagonal, so query t sees keys 0..t only."""
    xp = get_backend(xp)
    return xp.tril(xp.ones((T, T), dtype=bool))[None, None]      # (1,1,T,T)


def target_keep(ids, pad_id):
    """ids (B,T) -> (B,1,T,T): causal and not padding."""
    return padding_keep(ids, pad_id) & causal_keep(ids.shape[1], get_xp(ids))  # (B,1,T,T)
