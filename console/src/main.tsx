import { createConnectQueryKey, createQueryOptions, TransportProvider } from "@connectrpc/connect-query";
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { App } from "./App.js";
import { isSignedOut, transport } from "./api.js";
import "./styles.css";

/**
 * A session that ends while the console is open (expiry, sign-out elsewhere, key revoked): the
 * first refused call re-asks WhoAmI, whose refusal brings back the sign-in screen.
 */
const whoAmIKey = createConnectQueryKey({ schema: AuthService.method.whoAmI, cardinality: "finite" });
const onError = (err: unknown, queryKey?: readonly unknown[]) => {
  // WhoAmI's own refusal is what shows the sign-in screen: re-asking it would loop.
  const isWhoAmI = (queryKey?.[1] as { methodName?: string } | undefined)?.methodName === AuthService.method.whoAmI.name;
  if (isSignedOut(err) && !isWhoAmI) void queryClient.invalidateQueries({ queryKey: whoAmIKey });
};

const queryClient: QueryClient = new QueryClient({
  queryCache: new QueryCache({ onError: (err, query) => onError(err, query.queryKey) }),
  mutationCache: new MutationCache({ onError: (err) => onError(err) }),
  defaultOptions: { queries: { retry: (count, err) => !isSignedOut(err) && count < 1, refetchOnWindowFocus: false, staleTime: 5_000 } },
});

// The first screen's two independent reads start at once, before React renders (one round trip, not two).
void queryClient.prefetchQuery(createQueryOptions(AuthService.method.whoAmI, {}, { transport }));
void queryClient.prefetchQuery(createQueryOptions(Health.method.list, {}, { transport }));

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
