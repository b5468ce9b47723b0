// Drives the gateway with the official JavaScript SDK (@google/genai); prints one JSON
// line with what it saw. Run by tests/gateway/test_js_sdk.py.
import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({
  apiKey: process.env.GATEWAY_KEY,
  httpOptions: { baseUrl: process.env.GATEWAY_URL },
});
const prompt = process.env.PROMPT;
const unary = await ai.models.generateContent({ model: "auto", contents: prompt });
let streamed = "";
const versions = [];
for await (const chunk of await ai.models.generateContentStream({ model: "auto", contents: prompt })) {
  streamed += chunk.text ?? "";
  versions.push(chunk.modelVersion);
}
const counted = await ai.models.countTokens({ model: "auto", contents: prompt });
const embedded = await ai.models.embedContent({ model: "auto", contents: ["a", "b"] });
let notFound = null;
try {
  await ai.models.generateContent({ model: "not-routed", contents: prompt });
} catch (err) {
  notFound = err.status;
}
console.log(JSON.stringify({
  unary: unary.text,
  unaryModel: unary.modelVersion,
  streamed,
  firstVersion: versions[0],
  lastVersion: versions[versions.length - 1],
  tokens: counted.totalTokens,
  embeddings: embedded.embeddings.length,
  notFound,
}));
