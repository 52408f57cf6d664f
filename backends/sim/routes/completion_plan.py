"""What a /v1/completions request will answer: its prompts (one, or a batch), and per prompt
`n` choices, indexed prompt-major as SGLang's tokenizer manager expands a batch (choice
`i * n + j` is sample `j` of prompt `i`; echo takes prompt `index // n`)."""

from __future__ import annotations

from warmgate.backends.sim.answer import plan_text, stop_strings
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.constrained.constraint import Constraint, select
from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.generation import Generation
from warmgate.backends.sim.logprobs import Logprobs
from warmgate.backends.sim.prompt import Prompt, decode_ids, render_ids, render_text
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat import MAX_CHOICES, draws_for
from warmgate.backends.sim.validation import field_error
from warmgate.backends.sim.wire import CompletionRequest
from warmgate.backends.sim.writer import Writer


class CompletionPlan:
    """The choices of one request, the echo text of each prompt and, for an echo with
    logprobs, each prompt's own token logprobs."""

    __slots__ = ("choices", "echoes", "prompt_logprobs")

    def __init__(
        self, choices: list[Choice], echoes: list[str], prompt_logprobs: list[Logprobs | None]
    ) -> None:
        self.choices = choices
        self.echoes = echoes
        self.prompt_logprobs = prompt_logprobs


def output_constraint(completion: CompletionRequest) -> Constraint | None:
    """CompletionRequest's json_schema, regex and ebnf, and response_format over them
    (serving_completions._build_sampling_params); compiled."""
    schema: object = completion.json_schema
    fmt = completion.response_format
    if fmt is not None and fmt.type in ("json_schema", "json_object"):
        schema = fmt.constrained_schema()
        if schema is None:
            raise SimError("schema_ is required for json_schema response format request.", 400,
                           "BadRequest")  # fmt: skip
    if schema is None and completion.regex is None and completion.ebnf is None:
        return None
    return select(schema, completion.regex, completion.ebnf)


def plan(
    completion: CompletionRequest, replica: Replica, rid: str, constraint: Constraint | None
) -> CompletionPlan:
    prompts = _prompts(completion, replica)
    if not 1 <= completion.n <= MAX_CHOICES:
        raise SimError(f"n must be between 1 and {MAX_CHOICES}.")
    config, n = replica.config, completion.n
    single = len(prompts) == 1 and n == 1
    planned: list[Choice] = []
    echoes: list[str] = []
    prompt_logprobs: list[Logprobs | None] = []
    top = completion.logprobs
    for number, (prompt, echo) in enumerate(prompts):
        budget = intake.max_new_tokens(completion.max_tokens, len(prompt), config)
        echoes.append(echo if completion.echo else "")
        with_prompt = completion.echo and bool(top)
        scored = None
        if with_prompt:
            seed = draws_for(completion.seed, number, replica)().getrandbits(64)
            scored = Logprobs(prompt.tokens, top or 0, seed, first_unscored=True)
        prompt_logprobs.append(scored)
        for sample in range(n):
            index = number * n + sample
            draws = draws_for(completion.seed, index, replica)
            answer = plan_text(
                Writer(prompt.seed + sample),
                config.output_tokens_mean,
                budget,
                completion.ignore_eos,
                stop_strings(completion.stop),
                constraint=constraint,
                draws=draws,
                tokenizer=replica.tokenizer,
            )
            generation = Generation(
                rid if single else f"{rid}_{index}",
                prompt_tokens=len(prompt),
                block_hashes=prompt.block_hashes,
                output_tokens=answer.output_tokens,
                stop_reason=answer.stop_reason,
            )
            logprobs = None
            if top is not None:
                logprobs = Logprobs(answer.token_texts(), top, draws().getrandbits(64))
            planned.append(Choice(index, answer, generation, logprobs))
    return CompletionPlan(planned, echoes, prompt_logprobs)


def _prompts(completion: CompletionRequest, replica: Replica) -> list[tuple[Prompt, str]]:
    """Each prompt with the text an echo repeats: a string, a batch of strings, a list of
    token ids, or a batch of token-id lists (CompletionRequest.prompt)."""
    raw, config, tokenizer = completion.prompt, replica.config, replica.tokenizer
    if not raw or (isinstance(raw, list) and all(not item for item in raw)):
        raise SimError("Prompt cannot be empty")
    if isinstance(raw, str) or all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
        raw = [raw]
    prompts: list[tuple[Prompt, str]] = []
    for item in raw:
        if isinstance(item, str):
            prompts.append((render_text(item, tokenizer, config.seed, completion.seed), item))
        elif isinstance(item, list) and item and all(isinstance(i, int) for i in item):
            prompts.append((render_ids(item, tokenizer, config.seed), decode_ids(item)))
        else:
            # pydantic's refusal of a prompt that is none of the four shapes it accepts
            raise field_error("prompt", "list_type", "Input should be a valid list", raw)
    return prompts
