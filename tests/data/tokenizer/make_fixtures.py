#!/usr/bin/python3
"""Writes the tokenizer fixtures of tests/test_tokenizer_reference.cpp (stdlib only).

  /usr/bin/python3 tests/data/tokenizer/make_fixtures.py     # tokenizer dirs + texts.json
  (cd /tmp/t && npm install tokenizers@0.23.2)               # Hugging Face tokenizers, Node bindings
  NODE_PATH=/tmp/t/node_modules node tests/data/tokenizer/reference.js   # -> reference.json

Five tokenizer.json files in the layouts of real models, with vocabularies and merges learned by
the small BPE trainer below on corpus.txt (the merges are arbitrary; what matters is that the
Hugging Face library and our C++ apply the same ones to the same pieces):
  gpt2       ByteLevel pre-tokenizer (GPT-2 regex), <|endoftext|>
  llama3     Split(Llama 3 regex) + ByteLevel, ignore_merges, BOS from a TemplateProcessing
  smollm2    Digits(individual) + ByteLevel, chat special tokens first in the vocabulary
  llama2     Prepend("▁") + Replace(" " -> "▁") normalizers, <0xXX> byte fallback, fuse_unk,
             BOS from tokenizer_config.json; "Ω" and "ж" left out of the vocabulary
  tinyllama  the same model with a Metaspace(prepend_scheme "first", split false) pre-tokenizer
texts.json holds hand-picked edge cases and seeded random strings over many scripts.
"""
import collections
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
N_MERGES = 300


def bytes_to_unicode():
    """GPT-2's byte -> printable character map."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


B2U = bytes_to_unicode()


def train(words, n_merges, base):
    """Plain BPE training: merge the most frequent adjacent pair (ties: the larger pair)."""
    vocab, merges = list(dict.fromkeys(base)), []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        vocab.append(a + b)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return list(dict.fromkeys(vocab)), merges


def byte_words(text):
    words = collections.Counter()
    for w in text.replace("\n", " \n").split(" "):
        words[tuple(B2U[b] for b in (" " + w).encode())] += 1
    return words


def meta_words(text):
    return collections.Counter(tuple("▁" + w) for w in text.split() if w)


def added(content, i):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def bpe(vocab, merges, **kw):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
         "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [[a, b] for a, b in merges]}
    m.update(kw)
    return m


def template(bos, bos_id):
    seq = {"Sequence": {"id": "A", "type_id": 0}}
    return {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, seq],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, seq,
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def write(name, tok, cfg=None):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    tok = dict({"version": "1.0", "truncation": None, "padding": None}, **tok)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    if cfg is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)


def texts():
    fixed = ["Hello world", "", " ", "   ", "a  b", "a   b  ", "The quick brown fox's tail; they're here, we'll see. "
             "I'D DO IT'S", "  leading and trailing  ", "line1\nline2\r\n\r\nline3\n\n\n  x", "tabs\tand\t\tmore\t",
             "1234567 12.5% 1,234 x²+y² ½ ٣٤٥ ४५६", "Les élèves français; über die Brücke. e\u0301 combining",
             "Москва — столица России. Жизнь", "東京は日本の首都です。北京是中国的首都。", "Emoji 😀🎉 👍🏽!!",
             "<|endoftext|>Hello<|endoftext|> world <|endoftext|>", "<s>Hello</s> <s> world",
             "<|begin_of_text|>Hi<|eot_id|>\n<|im_start|>user\nhey<|im_end|>", "def f(x):\n    return x**2  # sq\n",
             "'s 's 'S 'Re 'll", "Ωmega and жук unknown chars", "\u00a0nbsp\u2003em space\u3000ideographic",
             "a\u200bzero-width", "!!!???...", "the the the theory there", "x\n\n\ny", "  \n  x", " \t\n"]
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r",
             ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`", "éèàüößçñÉÜ", "МоскваЖизньпривет", "東京日本の首都です中国",
             ["😀", "🎉", "👍🏽"], "²³½¾٣٤४५①Ⅻ", ["e\u0301", "\u0308", "\u200b", "\u00a0", "\u2003", "\u3000", "\u0085"],
             ["'s", "'S", "'ll", "'RE", "'ve", "'d"], ["<|endoftext|>", "<s>", "</s>", "<|begin_of_text|>", "<unk>"],
             ["the", " the", "theory", "there", "Hello", " world", "ing"], ["Ω", "ж"], ["\u0915\u093f", "\u0646\u064e"]]
    rng = random.Random(7)
    rand = ["".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40))) for _ in range(60)]
    return fixed + rand


def main():
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        corpus = f.read()
    bl_vocab, bl_merges = train(byte_words(corpus), N_MERGES, [B2U[b] for b in range(256)])
    bl_decoder = dict(BYTE_LEVEL, add_prefix_space=True)

    n = len(bl_vocab)
    write("gpt2", {"added_tokens": [added("<|endoftext|>", n)], "normalizer": None, "pre_tokenizer": BYTE_LEVEL,
                   "post_processor": bl_decoder, "decoder": bl_decoder, "model": bpe(bl_vocab, bl_merges)})

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
    split = {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False}
    write("llama3", {"added_tokens": [added(s, n + i) for i, s in enumerate(specials)], "normalizer": None,
                     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, dict(BYTE_LEVEL, use_regex=False)]},
                     "post_processor": {"type": "Sequence", "processors": [bl_decoder, template(specials[0], n)]},
                     "decoder": bl_decoder, "model": bpe(bl_vocab, bl_merges, ignore_merges=True)},
          {"bos_token": specials[0], "eos_token": specials[1]})

    chat = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    digits = {"type": "Digits", "individual_digits": True}
    write("smollm2", {"added_tokens": [added(s, i) for i, s in enumerate(chat)], "normalizer": None,
                      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [digits, BYTE_LEVEL]},
                      "post_processor": bl_decoder, "decoder": bl_decoder, "model": bpe(chat + bl_vocab, bl_merges)},
          {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})

    kept = corpus.replace("Ω", "").replace("ж", "")
    chars = sorted(set(kept) - set(" \n"))
    sp_vocab, sp_merges = train(meta_words(kept), N_MERGES, ["▁"] + chars)
    head = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    vocab = head + [t for t in sp_vocab if t not in head]
    sp_added = [added(t, i) for i, t in enumerate(head[:3])]
    decoder = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
               {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    model = bpe(vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": {"__type": "AddedToken", "content": "<s>"},
           "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}
    prepend = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    write("llama2", {"added_tokens": sp_added, "normalizer": prepend, "pre_tokenizer": None,
                     "post_processor": template("<s>", 1), "decoder": decoder, "model": model}, cfg)
    meta = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    write("tinyllama", {"added_tokens": sp_added, "normalizer": None, "pre_tokenizer": meta,
                        "post_processor": template("<s>", 1), "decoder": decoder, "model": model}, cfg)

    with open(os.path.join(HERE, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(texts(), f, ensure_ascii=False, indent=0)
    print(f"tokenizer fixtures: {len(bl_merges)} byte-level merges, {len(sp_merges)} sentencepiece-style merges")


if __name__ == "__main__":
    main()
