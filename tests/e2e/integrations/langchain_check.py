"""Run in .venv-integrations by tests/e2e/test_integrations.py: recallstack's LangChain retriever
and chat history through LangChain's own API, with langchain_core's fake chat models (no LLM).
RECALLSTACK_URL, RECALLSTACK_API_KEY and CHECK_USER_ID come from the test."""

import asyncio
import os

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import FakeListChatModel, ParrotFakeChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.runnables.history import RunnableWithMessageHistory

from recallstack import Client
from recallstack.integrations.langchain import RecallstackChatMessageHistory, RecallstackRetriever

user = os.environ["CHECK_USER_ID"]
client = Client(user_id=user)

# The retriever: a RAG chain whose prompt the parrot model answers with, so the answer holds the context.
client.add("Alice prefers dark mode in every editor", metadata={"topic": "ui"}, categories=["preferences"])
client.add("Alice deploys the billing service with make release", metadata={"topic": "ops"})
retriever = RecallstackRetriever(client=client, k=2)
assert isinstance(retriever, BaseRetriever)
docs = retriever.invoke("which theme does alice like?")
assert docs and docs[0].page_content == "Alice prefers dark mode in every editor", \
    (docs, client.search("which theme does alice like?", explain=True))  # degraded sources, if any
assert docs[0].metadata["categories"] == ["preferences"] and docs[0].metadata["metadata"] == {"topic": "ui"}
assert docs[0].metadata["score"] > 0 and docs[0].id == docs[0].metadata["id"]
assert len(docs) <= 2

prompt = ChatPromptTemplate.from_messages([("human", "Memories:\n{context}\n\nQuestion: {question}")])
chain = ({"context": retriever | (lambda ds: "\n".join(d.page_content for d in ds)), "question": RunnablePassthrough()}
         | prompt | ParrotFakeChatModel() | StrOutputParser())
echoed = chain.invoke("how does alice deploy billing?")
assert echoed.startswith("Memories:\nAlice deploys the billing service with make release")  # the parrot echoes
assert echoed.endswith("Question: how does alice deploy billing?")
filtered = RecallstackRetriever(client=client, filters={"metadata": {"topic": "ops"}})
assert [d.page_content for d in filtered.invoke("alice")] == ["Alice deploys the billing service with make release"]
assert asyncio.run(retriever.ainvoke("dark mode"))[0].page_content == "Alice prefers dark mode in every editor"

# The chat history: RunnableWithMessageHistory with a fake chat model, then read back in order.
histories: dict[str, RecallstackChatMessageHistory] = {}


def history_for(session_id: str) -> BaseChatMessageHistory:
    return histories.setdefault(session_id, RecallstackChatMessageHistory(session_id, client=client))


model = FakeListChatModel(responses=["Hello Alice!", "You told me you like dark mode."])
chat_prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
chat = RunnableWithMessageHistory(chat_prompt | model, history_for, input_messages_key="input",
                                  history_messages_key="history")
config = {"configurable": {"session_id": "lc-session-1"}}
assert chat.invoke({"input": "Hi, I am Alice"}, config=config).content == "Hello Alice!"
assert chat.invoke({"input": "What do I like?"}, config=config).content == "You told me you like dark mode."

fresh = RecallstackChatMessageHistory("lc-session-1", client=Client(user_id=user))  # another process's view
got = fresh.messages
assert [(type(m).__name__, m.content) for m in got] == [
    ("HumanMessage", "Hi, I am Alice"), ("AIMessage", "Hello Alice!"),
    ("HumanMessage", "What do I like?"), ("AIMessage", "You told me you like dark mode.")], got

# Messages that are not plain text survive the round trip: tool calls, tool results, a system message.
other = RecallstackChatMessageHistory("lc-session-2", client=client)
other.add_messages([SystemMessage("be brief"),
                    AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "theme"}, "id": "call-1"}]),
                    ToolMessage("dark", tool_call_id="call-1")])
back = other.messages
assert isinstance(back[0], SystemMessage) and back[0].content == "be brief"
assert isinstance(back[1], AIMessage) and back[1].tool_calls[0]["name"] == "lookup" and back[1].content == ""
assert back[1].tool_calls[0]["args"] == {"q": "theme"}
assert isinstance(back[2], ToolMessage) and back[2].tool_call_id == "call-1" and back[2].content == "dark"
assert len(fresh.messages) == 4  # sessions are apart

# The messages are the user's memories (run_id = the session), stored as given.
session = client.get_all(run_id="lc-session-1")
assert session.total == 4 and {m.metadata["role"] for m in session.results} == {"user", "assistant"}

other.clear()
assert other.messages == [] and len(fresh.messages) == 4
assert client.get_all().total == 2 + 4  # clear() left the session's neighbours and the other memories
print("langchain: ok")
