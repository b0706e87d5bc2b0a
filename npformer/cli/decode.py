"""`npformer decode CKPT "3 4 5 6"`: the output tokens a checkpoint produces for a source."""

from npformer.cli import add_backend_flag
from npformer.errors import ConfigError, InputError, check_int
from npformer.model.config import MAX_SIZE


def add_parser(sub):
    p = sub.add_parser("decode", help="decode source sequences with a checkpoint (greedy or beam search)",
                       description="Decode each SOURCE (symbols separated by spaces or commas, e.g. \"3 4 5 6\") "
                                   "and print the output tokens before EOS, one line per source.")
    p.add_argument("checkpoint", metavar="CKPT", help="a model.npz written by `npformer train`")
    p.add_argument("sources", metavar="SOURCE", nargs="+", help="a source sequence of symbol ids")
    p.add_argument("--beam", type=int, default=1, metavar="K", help="beam size; 1 is greedy (default 1)")
    p.add_argument("--max-len", type=int, default=None, metavar="L",
                   help="most output tokens, EOS included (default: source length + 10)")
    add_backend_flag(p)
    p.set_defaults(func=run)


def parse_tokens(text):
    """'3 4,5' -> [3, 4, 5]; anything that is not an integer is an InputError."""
    parts = text.replace(",", " ").split()
    if not parts:
        raise InputError("an empty source: give symbol ids such as \"3 4 5 6\".")
    try:
        return [int(t) for t in parts]
    except ValueError:
        raise InputError(f"source {text!r} is not a list of integer token ids such as \"3 4 5 6\".") from None


def run(args):
    import numpy as np

    from npformer.model.checkpoint import load
    from npformer.model.decoding import MAX_BEAM
    from npformer.train.tasks import BOS, EOS, FIRST_SYMBOL, Task, pad, strip

    check_int("--beam", args.beam, 1, MAX_BEAM)
    if args.max_len is not None:
        check_int("--max-len", args.max_len, 1, MAX_SIZE["max_len"])
    sources = [parse_tokens(s) for s in args.sources]
    model = load(args.checkpoint, backend=args.backend)
    symbols = Task(n_symbols=model.cfg.src_vocab - FIRST_SYMBOL)  # the shared token scheme
    for text, s in zip(args.sources, sources):
        symbols.check_source(np.array(s), f"source {text!r}")
    src = pad([np.array(s) for s in sources])                    # (B,S) host
    max_len = args.max_len or src.shape[1] + 10
    if args.beam == 1:
        out = model.greedy_decode(src, max_len=max_len, bos_id=BOS, eos_id=EOS)
    else:
        try:
            out = model.beam_search(src, beam_size=args.beam, max_len=max_len, bos_id=BOS, eos_id=EOS)
        except NotImplementedError:
            raise ConfigError("beam search is not available in this version: use --beam 1.") from None
    for row in out:
        print(" ".join(str(t) for t in strip(row)))
    return 0
