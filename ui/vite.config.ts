import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into ui/dist by `make ui`; the gateway serves it at / (assets under /assets).
// `npm run dev` proxies the API to a running gateway.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { proxy: { "/v1": "http://127.0.0.1:8080", "/ui/api": "http://127.0.0.1:8080", "/readyz": "http://127.0.0.1:8080" } },
});
