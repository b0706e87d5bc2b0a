"""Exercise 13, transformer: the whole model's backward, in the order the forward reversed.
Read: docs/derivations/model.md

Write `backward`, then run `npformer exercise check transformer.py`. Every part is npformer's
own layer, its backward done; yours is the order, the scale and the fan-outs. The forward is
given; leave it as it is.
"""

from npformer.masks import padding_keep, target_keep
from npformer.model import Transformer as PackageTransformer

EXERCISE = "transformer"


class Transformer(PackageTransformer):
    """The model of Figure 1 (its parts and their parameters are npformer's Transformer's)."""

    def forward(self, src, tgt_in, training=True):               # src: (B,S), tgt_in: (B,T) ids
        src, tgt = self._check_pair(src, tgt_in)
        pad = self.cfg.pad_id
        src_keep, tgt_keep = padding_keep(src, pad), target_keep(tgt, pad)  # (B,1,1,S), (B,1,T,T)
        x = self.src_embed.forward(src) * self.emb_scale         # (B,S,D)  (TF-1)
        x = self.src_drop.forward(self.src_pos.forward(x), training)  # (B,S,D)  (TF-2)
        memory = self.encoder.forward(x, src_keep, training)     # (B,S,D)  (TF-3)
        y = self.tgt_embed.forward(tgt) * self.emb_scale         # (B,T,D)  (TF-1)
        y = self.tgt_drop.forward(self.tgt_pos.forward(y), training)  # (B,T,D)  (TF-2)
        y = self.decoder.forward(y, memory, tgt_keep, src_keep, training)  # (B,T,D)  (TF-4)
        return self.generator.forward(y)                         # (B,T,V)  (TF-5)

    def backward(self, dlogits):
        """The gradient of every parameter of the model.

        Inputs: dlogits (B,T,V). Every part (generator, decoder, tgt_pos, tgt_drop, tgt_embed,
        encoder, src_pos, src_drop, src_embed) has a backward that adds its own parameter
        gradients: self.decoder.backward(dy) returns (dy, dmemory), the embeddings' return None.
        Returns nothing; the parts' gradients are the result: (TF-6) the generator, (TF-7) the
        decoder, (TF-8) the embeddings (mind the forward's scale), (TF-9) the encoder, fed by
        the memory's gradient.   Read: docs/derivations/model.md
        """
        raise NotImplementedError("write Transformer.backward")
