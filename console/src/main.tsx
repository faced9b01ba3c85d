import { createConnectQueryKey, TransportProvider } from "@connectrpc/connect-query";
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { App } from "./App.js";
import { isSignedOut, transport } from "./api.js";
import "./styles.css";

/**
 * A session that ends while the console is open (expiry, sign-out elsewhere, key revoked): the
 * first refused call re-asks WhoAmI, whose refusal brings back the sign-in screen.
 */
const onError = (err: unknown) => {
  if (isSignedOut(err))
    void queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: AuthService.method.whoAmI, cardinality: "finite" }) });
};

const queryClient: QueryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: { queries: { retry: (count, err) => !isSignedOut(err) && count < 1, refetchOnWindowFocus: false, staleTime: 5_000 } },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
