"""Agent-framework integrations of the recallstack SDK, one module per framework.

Each imports its framework, which `import recallstack` never does; install it with the
extra of the same name (`pip install "recallstack-sdk[langchain]"`):

| module (extra) | what |
| --- | --- |
| `.langchain` (langchain) | `RecallstackRetriever`, `RecallstackChatMessageHistory` |
| `.llamaindex` (llamaindex) | `RecallstackRetriever`, `RecallstackMemoryBlock` |
| `.crewai` (crewai) | `RecallstackStorage` (a storage backend of crewai's `Memory`), `recallstack_memory` |
| `.openai_agents` (openai-agents) | `memory_tools` (add_memory, search_memories), `RecallstackSession` |

Every one of them calls the SDK's `Client`; docs/integrations.md has an example of each.
"""
