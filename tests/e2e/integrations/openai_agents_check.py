"""Run in .venv-integrations by tests/e2e/test_integrations.py: recallstack's memory tools and
Session for the OpenAI Agents SDK, driven by Runner.run with a scripted model (a subclass of the
SDK's Model interface, written here: no LLM). RECALLSTACK_URL, RECALLSTACK_API_KEY and
CHECK_USER_ID come from the test."""

import asyncio
import json
import os

from agents import Agent, Runner
from agents.memory import Session
from agents.models.interface import Model
from agents.items import ModelResponse
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from recallstack import Client
from recallstack.integrations.openai_agents import RecallstackSession, memory_tools

user = os.environ["CHECK_USER_ID"]
client = Client(user_id=user)


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                 content=[ResponseOutputText(type="output_text", text=text, annotations=[])])


def call(name: str, arguments: dict, n: int) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(id=f"fc_{n}", call_id=f"call_{n}", type="function_call", status="completed",
                                    name=name, arguments=json.dumps(arguments))


class ScriptedModel(Model):
    """Answers each model call with the next step of a script; a step sees the input (tool
    outputs included) the SDK sent, and records it."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.inputs: list = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None, **kwargs):
        self.inputs.append(input)
        self.tools = [tool.name for tool in tools]
        return ModelResponse(output=self.steps.pop(0)(input), usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("the checks do not stream")


def tool_output(items) -> str:
    return next(item["output"] for item in reversed(items) if item.get("type") == "function_call_output")


async def main() -> None:
    # The tools: the agent stores a fact, then searches for it, then answers with what came back.
    model = ScriptedModel([
        lambda _: [call("add_memory", {"text": "Alice's favourite editor theme is solarized dark"}, 1)],
        lambda _: [call("search_memories", {"query": "which editor theme does alice like?"}, 2)],
        lambda items: [message("Found: " + tool_output(items))],
    ])
    agent = Agent(name="assistant", instructions="Use your memory.", model=model, tools=memory_tools(client))
    result = await Runner.run(agent, "Remember my theme, then tell me what it is")
    assert model.tools == ["add_memory", "search_memories"]
    stored = json.loads(tool_output(model.inputs[1]))["stored"]
    assert len(stored) == 1 and client.get(stored[0]).memory == "Alice's favourite editor theme is solarized dark"
    found = json.loads(result.final_output.removeprefix("Found: "))
    assert found[0]["id"] == stored[0] and found[0]["memory"] == "Alice's favourite editor theme is solarized dark"
    assert found[0]["score"] > 0

    # A refused call reaches the model as the tool's answer, naming the field, not as a crash.
    bad = ScriptedModel([lambda _: [call("add_memory", {"text": "   "}, 3)],
                         lambda items: [message(tool_output(items))]])
    failed = await Runner.run(Agent(name="a", model=bad, tools=memory_tools(client)), "store nothing")
    assert failed.final_output.startswith("recallstack refused the request: ") and "text" in failed.final_output, \
        failed.final_output

    # The session: two runs share it, so the second sees the first's turn; then it is read back.
    session = RecallstackSession("oa-session-1", client=client)
    assert isinstance(session, Session)
    chat = ScriptedModel([lambda _: [message("Hello Alice")], lambda _: [message("You are Alice")]])
    talker = Agent(name="talker", model=chat)
    await Runner.run(talker, "Hi, I am Alice", session=session)
    second = await Runner.run(talker, "Who am I?", session=session)
    assert second.final_output == "You are Alice"
    history = chat.inputs[1]
    assert [(i.get("role"), i.get("content")) for i in history][:1] == [("user", "Hi, I am Alice")], history
    assert any("Hello Alice" in json.dumps(i) for i in history), history

    reread = await RecallstackSession("oa-session-1", client=Client(user_id=user)).get_items()
    assert [i.get("role") for i in reread] == ["user", "assistant", "user", "assistant"], reread
    assert reread[0]["content"] == "Hi, I am Alice" and reread[2]["content"] == "Who am I?"
    assert reread[3]["content"][0]["text"] == "You are Alice" and reread[3]["type"] == "message"
    assert await session.get_items(limit=1) == reread[-1:]
    assert (await session.pop_item()) == reread[-1]
    assert len(await session.get_items()) == 3
    await session.clear_session()
    assert await session.get_items() == [] and await session.pop_item() is None
    # clear_session deleted the session only: the memory the tools stored stays
    assert client.get(stored[0]).memory == "Alice's favourite editor theme is solarized dark"


asyncio.run(main())
print("openai_agents: ok")
