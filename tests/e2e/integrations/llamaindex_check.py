"""Run in .venv-integrations by tests/e2e/test_integrations.py: recallstack's llama_index retriever
and memory block through llama_index's own API, with its MockLLM (which echoes the prompt: no LLM).
RECALLSTACK_URL, RECALLSTACK_API_KEY and CHECK_USER_ID come from the test."""

import asyncio
import os

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import Memory
from llama_index.core.query_engine import RetrieverQueryEngine

from recallstack import Client
from recallstack.integrations.llamaindex import RecallstackMemoryBlock, RecallstackRetriever

user = os.environ["CHECK_USER_ID"]
client = Client(user_id=user)

# The retriever, alone and inside a query engine whose mock LLM echoes the prompt it was given.
client.add("Alice prefers dark mode in every editor", metadata={"topic": "ui"}, categories=["preferences"])
client.add("Alice deploys the billing service with make release", metadata={"topic": "ops"})
retriever = RecallstackRetriever(client, similarity_top_k=2)
nodes = retriever.retrieve("which theme does alice like?")
assert nodes and nodes[0].node.get_content() == "Alice prefers dark mode in every editor", \
    (nodes, client.search("which theme does alice like?", explain=True))  # degraded sources, if any
assert nodes[0].score > 0 and nodes[0].node.metadata["metadata.topic"] == "ui", nodes[0]
assert "similarity" not in nodes[0].node.get_content(metadata_mode="llm")  # scores are not for the LLM
assert nodes[0].node.metadata["categories"] == ["preferences"]
assert nodes[0].node.node_id == client.search("dark mode").results[0].id
assert len(nodes) <= 2
assert asyncio.run(retriever.aretrieve("dark mode"))[0].node.get_content() == "Alice prefers dark mode in every editor"
only_ops = RecallstackRetriever(client, filters={"metadata": {"topic": "ops"}})
ops = [n.node.get_content() for n in only_ops.retrieve("alice")]
assert ops == ["Alice deploys the billing service with make release"], ops

engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
answer = str(engine.query("how does alice deploy billing?"))
assert "Alice deploys the billing service with make release" in answer, answer  # the prompt held the memory


# The memory block inside llama_index's Memory: puts flushed from the short-term queue become
# memories, and aget() injects the relevant ones for the next turn.
async def memory_block() -> None:
    block = RecallstackMemoryBlock(client=client, max_tokens=200)
    memory = Memory.from_defaults(session_id="li-session-1", token_limit=60, chat_history_token_ratio=0.2,
                                  token_flush_size=10, memory_blocks=[block])
    await memory.aput_messages([
        ChatMessage(role="user", content="My cat is called Miso and she is eleven years old"),
        ChatMessage(role="assistant", content="Noted: Miso, your eleven year old cat"),
        ChatMessage(role="user", content="I also play the cello in a quartet on Thursdays"),
        ChatMessage(role="assistant", content="Cello on Thursdays, noted"),
    ])
    flushed = client.get_all(run_id="li-session-1")
    assert flushed.total >= 2, flushed  # the oldest messages went to the block, hence recallstack
    assert {m.metadata["role"] for m in flushed.results} <= {"user", "assistant"}
    assert "My cat is called Miso and she is eleven years old" in {m.memory for m in flushed.results}

    messages = await memory.aget(input="what is the name of my cat?")
    injected = "\n".join(m.content or "" for m in messages)
    assert "Miso" in injected and "## Relevant memories" in injected, injected

    # A chat engine over that memory: the mock LLM echoes the prompt, which holds the memories.
    chat = SimpleChatEngine.from_defaults(llm=MockLLM(), memory=memory)
    reply = await chat.achat("remind me about my cat")
    assert "Miso" in str(reply), reply

    assert await block.aget([]) == ""  # no messages, no query: nothing injected
    nothing = await RecallstackMemoryBlock(client=Client(user_id=user + "-empty")).aget(
        [ChatMessage(role="user", content="anything about cats?")])
    assert nothing == "", nothing  # a user without memories gets no block


asyncio.run(memory_block())
print("llamaindex: ok")
