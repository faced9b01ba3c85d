import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ReflectionIndex } from "./reflection-index.js";

/** Full names of the reflection services (listed by list_services themselves). */
export const REFLECTION_SERVICES = [v1.ServerReflection.typeName, v1alpha.ServerReflection.typeName] as const;

function notFound(message: string): v1.ServerReflectionResponse["messageResponse"] {
  return {
    case: "errorResponse",
    value: create(v1.ErrorResponseSchema, { errorCode: Code.NotFound, errorMessage: message }),
  };
}

/**
 * Answers one reflection request. `sent` tracks files already sent on this stream so
 * imports go out once (the requested file always does), as grpc-go's server does.
 */
export function answerReflection(index: ReflectionIndex, req: v1.ServerReflectionRequest, sent: Set<string>): v1.ServerReflectionResponse {
  const files = (file: Parameters<ReflectionIndex["serializeWithDependencies"]>[0]) =>
    ({
      case: "fileDescriptorResponse",
      value: create(v1.FileDescriptorResponseSchema, {
        fileDescriptorProto: index.serializeWithDependencies(file, sent),
      }),
    }) as const;
  let messageResponse: v1.ServerReflectionResponse["messageResponse"];
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      messageResponse = {
        case: "listServicesResponse",
        value: create(v1.ListServiceResponseSchema, { service: index.services.map((name) => ({ name })) }),
      };
      break;
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      messageResponse = file ? files(file) : notFound(`file not found: ${r.value}`);
      break;
    }
    case "fileContainingSymbol": {
      const file = index.fileBySymbol(r.value);
      messageResponse = file ? files(file) : notFound(`symbol not found: ${r.value}`);
      break;
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const file = index.fileByExtension(containingType, extensionNumber);
      messageResponse = file ? files(file) : notFound(`extension not found: ${containingType} ${extensionNumber}`);
      break;
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(r.value);
      messageResponse = numbers
        ? {
            case: "allExtensionNumbersResponse",
            value: create(v1.ExtensionNumberResponseSchema, { baseTypeName: r.value, extensionNumber: numbers }),
          }
        : notFound(`type not found: ${r.value}`);
      break;
    }
    case undefined:
      throw new ConnectError("reflection request has no message_request set", Code.InvalidArgument);
  }
  return create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse });
}

/**
 * Registers grpc.reflection.v1 and grpc.reflection.v1alpha ServerReflection (bidi streaming,
 * so gRPC over HTTP/2 only): list_services, file_by_filename, file_containing_symbol,
 * file_containing_extension, all_extension_numbers_of_type. v1alpha is wire-identical, so it
 * is answered by converting through the binary format.
 */
export function registerReflectionServices(router: ConnectRouter, index: ReflectionIndex): void {
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield answerReflection(index, req, sent);
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        const asV1 = fromBinary(v1.ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, req));
        const answer = answerReflection(index, asV1, sent);
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, answer));
      }
    },
  });
}
