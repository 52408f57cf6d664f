"""Structured-output client libraries against `warmgate serve` in front of the simulator:
each returns an object its own models validated."""

from __future__ import annotations

import instructor
import pytest
from langchain_core.output_parsers import PydanticOutputParser
from langchain_openai import ChatOpenAI
from openai import OpenAI
from pydantic import SecretStr

from tests.clients.models import Address, Person, Team

PROMPT = "Extract the team: Ada leads; Bob and Cy work with her in Oslo."


@pytest.mark.parametrize("mode", [instructor.Mode.JSON, instructor.Mode.TOOLS,
                                  instructor.Mode.MD_JSON])  # fmt: skip
def test_instructor_returns_a_validated_nested_model(client: OpenAI, mode: instructor.Mode) -> None:
    structured = instructor.from_openai(client, mode=mode)
    team = structured.chat.completions.create(
        model="demo",
        response_model=Team,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=4000,
        max_retries=0,  # the first answer must validate: no second chance
    )
    assert isinstance(team, Team)
    assert isinstance(team.lead.addresses[0], Address)
    Team.model_validate(team.model_dump())


@pytest.mark.parametrize("mode", [instructor.Mode.JSON, instructor.Mode.TOOLS])
def test_instructor_iterates_over_a_model_with_defs(client: OpenAI, mode: instructor.Mode) -> None:
    structured = instructor.from_openai(client, mode=mode)
    people = structured.chat.completions.create_iterable(
        model="demo",
        response_model=Person,
        messages=[{"role": "user", "content": "List the people: Ada, Bob, Cy."}],
        max_tokens=4000,
        max_retries=0,
    )
    listed = list(people)
    assert listed
    assert all(isinstance(person, Person) for person in listed)
    assert all(isinstance(address, Address) for p in listed for address in p.addresses)


def test_langchain_json_mode_parses_into_the_model(gateway_url: str, api_key: str) -> None:
    parser = PydanticOutputParser(pydantic_object=Team)
    model = ChatOpenAI(
        model="demo",
        base_url=gateway_url,
        api_key=SecretStr(api_key),
        max_retries=0,
        max_completion_tokens=4000,
    )
    structured = model.with_structured_output(Team, method="json_mode")
    team = structured.invoke([("system", parser.get_format_instructions()), ("user", PROMPT)])
    assert isinstance(team, Team)
    Team.model_validate(team.model_dump())


def test_the_sdks_chat_parse_returns_the_nested_model(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="demo",
        messages=[{"role": "user", "content": PROMPT}],
        response_format=Team,
        max_tokens=4000,
    )
    message = completion.choices[0].message
    assert message.refusal is None
    assert isinstance(message.parsed, Team)
    assert isinstance(message.parsed.members, list)


def test_the_sdks_responses_parse_returns_the_nested_model(client: OpenAI) -> None:
    response = client.responses.parse(
        model="demo", input=PROMPT, text_format=Team, max_output_tokens=4000
    )
    assert response.status == "completed"
    parsed = response.output_parsed
    assert isinstance(parsed, Team)
    assert isinstance(parsed.lead, Person)
