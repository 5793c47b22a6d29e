"""A tiny byte-level BPE tokenizer with a ChatML template, built offline for tests.

Tiny model directories (config.json + safetensors + tokenizer files) use it so tests never
touch the Hugging Face hub. The vocabulary is small (320 by default) so embedding tables stay
tiny, and the merges are few enough that accented, CJK and emoji characters span several
tokens, which is what the incremental detokenizer has to get right.
"""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ENDOFTEXT_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"
# Trained first, so their ids are 0, 1, 2 in this order.
SPECIAL_TOKENS = (ENDOFTEXT_TOKEN, IM_START_TOKEN, IM_END_TOKEN)

# ChatML as SmolLM2-Instruct writes it, without its default system message.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! This is a tiny tokenizer for tests.",
    "The engine schedules requests, runs the model and streams the text back.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
    "In the beginning there was the token, and the token was decoded into text.",
    "What is the capital of France? The capital of France is Paris.",
    "Numbers like 12, 345 and 6789 appear in the text too.",
    "Café, naïve, résumé, façade, jalapeño, Ångström, über, Straße.",
    "Ça va très bien, merci. ¿Dónde está la biblioteca?",
    "日本語のテキストも少し含まれています。",
    "中文文本也在这里，你好世界。",
    "한국어 문장도 있습니다.",
    "Emoji: 😀 🚀 🎉 👍🏽 ❤️ 🇫🇷",
    "Привет, мир! Γειά σου κόσμε!",
)


def make_tiny_tokenizer(save_dir: Path, vocab_size: int = 320) -> Path:
    """Train a byte-level BPE tokenizer and save it so `AutoTokenizer.from_pretrained` loads it.

    `<|endoftext|>` is bos, eos, pad and unk; `<|im_start|>` and `<|im_end|>` are extra special
    tokens. No bos is added on encode (like GPT-2 and SmolLM2). Returns `save_dir`.
    """
    min_vocab_size = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the 256 byte tokens and "
            f"{len(SPECIAL_TOKENS)} special tokens; pass at least {min_vocab_size}"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(_CORPUS), trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=ENDOFTEXT_TOKEN,
        eos_token=ENDOFTEXT_TOKEN,
        pad_token=ENDOFTEXT_TOKEN,
        unk_token=ENDOFTEXT_TOKEN,
        additional_special_tokens=[IM_START_TOKEN, IM_END_TOKEN],
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    save_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(save_dir)
    return save_dir
