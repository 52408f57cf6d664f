"""Seeded pseudo-output: answer text and reasoning (structured output: constrained/).

Every piece it returns is one token for the simulator's tokenizer, so the number of pieces is
the number of decode steps and of `completion_tokens`.
"""

from __future__ import annotations

import random

EOS_TOKEN_ID = 128009  # Llama-3 <|eot_id|>: SGLang reports it as matched_stop

_WORD_TEXT = """
the of and to in is that for it as was with on be at by this had not are but from or have an
they which one you were her all she there would their we him been has when who will more no
if out so said what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made after also did many
before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year
off come since against go came right used take three states himself few house use during
without again place around however home small found thought went say part once general high
upon school every don does got united left number course war until always away something
fact though water less public put think almost hand enough far took head yet system better
set told nothing night end why called didn eyes find going look asked later knew point next
program city business give group toward young days let room president side social given
present several order national
"""
WORDS = tuple(_WORD_TEXT.split())


class Writer:
    """Output pieces for one request, deterministic in (seed, prompt)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def natural_length(self, mean: int) -> int:
        """How many tokens the model would write before its stop token (at least 1)."""
        return max(1, round(self._random.expovariate(1.0 / max(mean, 1))))

    def words(self, count: int) -> list[str]:
        """`count` word tokens: a capitalised first word, then words with a leading space."""
        pieces = [" " + word for word in self._random.choices(WORDS, k=count)]
        if pieces:
            pieces[0] = pieces[0][1:].capitalize()[:6]
        return pieces
