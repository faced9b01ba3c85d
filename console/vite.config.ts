import { defineConfig } from "vite";

/**
 * The web console (docs/console.md): built to console/dist, which every Nexus process serves at
 * /console. The app imports the generated API types from ../gen and the permission table from
 * ../services/kernel/authz — the same files the servers use.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  // React's automatic JSX runtime through Vite's own transformer (no plugin needed).
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1000,
    rollupOptions: {
      // TanStack Query marks its hooks "use client" (for React server components); meaningless here.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  server: { fs: { allow: [".."] } },
  logLevel: "warn",
});
