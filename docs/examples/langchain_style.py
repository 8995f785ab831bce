"""A LangChain-style chat loop with recallstack as its long-term memory, no LLM needed.

LangChain's memory interface is two calls around each model call:
`load_memory_variables(inputs)` fills the prompt, `save_context(inputs, outputs)` stores the
turn. `RecallstackMemory` implements them with the SDK: before each reply it fetches a
token-budgeted context block relevant to the user's message; after it, it stores the
user's message. The "model" here is a canned reply function, so the example runs
anywhere; swap `canned_llm` for a real chat model (LangChain's `ChatOpenAI().invoke`, ...).

Run it against a running stack:
    RECALLSTACK_URL=http://127.0.0.1:8080 python docs/examples/langchain_style.py [user_id]
"""

from __future__ import annotations

import sys
import uuid

from recallstack import Client

PROMPT = """You are a helpful assistant with long-term memory.
{history}

User: {input}
Assistant:"""


class RecallstackMemory:
    """LangChain's BaseMemory protocol (memory_variables / load_memory_variables /
    save_context / clear) on recallstack, for one user."""

    memory_key = "history"

    def __init__(self, client: Client, user_id: str, max_tokens: int = 300):
        self.client, self.user_id, self.max_tokens = client, user_id, max_tokens

    @property
    def memory_variables(self) -> list[str]:
        return [self.memory_key]

    def load_memory_variables(self, inputs: dict[str, str]) -> dict[str, str]:
        block = self.client.get_context(inputs["input"], user_id=self.user_id, max_tokens=self.max_tokens)
        return {self.memory_key: block.context}

    def save_context(self, inputs: dict[str, str], outputs: dict[str, str]) -> None:
        # Store what the user said; the SDK makes it visible to the very next load.
        self.client.add([{"role": "user", "content": inputs["input"]}], user_id=self.user_id, infer=False)

    def clear(self) -> None:
        self.client.delete_all(user_id=self.user_id)


def canned_llm(prompt: str) -> str:
    """Stands in for a chat model: answers from the memories the prompt carries."""
    question = prompt.rsplit("User: ", 1)[1].split("\n", 1)[0]
    if question.endswith("?"):
        remembered = [line[2:].split("] ", 1)[-1] for line in prompt.splitlines() if line.startswith("- [")]
        return "From memory: " + (" | ".join(remembered[:2]) if remembered else "I don't know yet.")
    return "Noted."


def chat(memory: RecallstackMemory, llm, message: str) -> str:
    """One turn of a LangChain-style chain: load memory, fill the prompt, call the model, save."""
    prompt = PROMPT.format(input=message, **memory.load_memory_variables({"input": message}))
    reply = llm(prompt)
    memory.save_context({"input": message}, {"output": reply})
    return reply


def main(user_id: str) -> None:
    with Client() as client:  # $RECALLSTACK_URL or http://127.0.0.1:8080
        memory = RecallstackMemory(client, user_id)
        for message in ["My favourite programming language is Rust.",
                        "I live in Lisbon and work on a payments team.",
                        "Which programming language do I like?",
                        "Where do I live?"]:
            print(f"user: {message}")
            print(f"assistant: {chat(memory, canned_llm, message)}")
        memory.clear()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"example-{uuid.uuid4().hex[:8]}")
