"""`npformer pronounce CKPT WORD ...`: the phonemes a g2p checkpoint gives each word."""

from npformer.cli import add_backend_flag
from npformer.errors import ConfigError, check_int


def add_parser(sub):
    p = sub.add_parser("pronounce", help="the pronunciation a g2p checkpoint gives each word",
                       description="Decode each WORD with a checkpoint of `npformer train --task g2p` (best.npz "
                                   "holds the lowest dev WER) and print the word and its phonemes, one line each.")
    p.add_argument("checkpoint", metavar="CKPT", help="a best.npz or model.npz of a g2p run")
    p.add_argument("words", metavar="WORD", nargs="+", help="a word, in the letters the model was trained on")
    p.add_argument("--beam", type=int, default=1, metavar="N", help="beam size; 1 is greedy (default 1)")
    p.add_argument("--show-attention", metavar="PATH", default=None,
                   help="write the cross-attention of the first word, decoded greedily (letters against "
                        "phonemes), to this PNG (needs matplotlib: pip install -e '.[plot]')")
    add_backend_flag(p)
    p.set_defaults(func=run)


def run(args):
    from npformer.model.checkpoint import load
    from npformer.model.decoding import MAX_BEAM
    from npformer.train.g2p import pronounce
    from npformer.train.g2p_trainer import load_vocab

    check_int("--beam", args.beam, 1, MAX_BEAM)                  # the bound decode and beam_search keep
    vocab = load_vocab(args.checkpoint)
    words = [w.lower() for w in args.words]
    src = [vocab.encode_word(w) for w in words]                  # an unknown letter: one sentence, before any work
    model = load(args.checkpoint, backend=args.backend)
    if args.beam > 1 and getattr(model, "kind", "transformer") == "rnn":
        raise ConfigError("beam search is written for the Transformer only: use --beam 1 with this model.")
    width = max(len(w) for w in words)
    for word, phonemes in zip(words, pronounce(model, vocab, words, args.beam)):
        print(f"{word:<{width}}  {' '.join(phonemes)}")
    if args.show_attention:
        from npformer.plots import plot_alignment
        from npformer.train.tasks import EOS, FIRST_SYMBOL
        letters = lambda ids: [vocab.letters[i - FIRST_SYMBOL] for i in ids]          # source: letters only
        phones = lambda ids: [vocab.phonemes[i - FIRST_SYMBOL] if i >= FIRST_SYMBOL else "</s>" if i == EOS
                              else "<pad>" for i in ids]
        path, _ = plot_alignment(model, src[0], args.show_attention, letters, phones)
        print(f"wrote {path}")
    return 0
