import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * Validates FHIR R4 JSON resources offline against the R4 base specification with HAPI
 * FHIR's instance validator, and prints one JSON line per file:
 *
 *   {"file": "...", "errors": N, "warnings": N, "issues": [{"severity", "location",
 *    "messageId", "message"}, ...]}
 *
 * Usage: Validate FILE_OR_DIR ...   validates each file (every *.json of a folder), exit 1
 *                                   if any has an error
 *        Validate --stdin           reads one path per line until EOF (one JVM per test
 *                                   session); prints one line per path and flushes it
 *
 * Offline means no terminology server: codes of external systems (LOINC, SNOMED CT) are
 * not checked: HAPI reports "CodeSystem is unknown and can't be validated" for them as a
 * warning. Nothing is downgraded here: what HAPI calls an error is reported as an error.
 */
public final class Validate {
  private final FhirValidator validator;

  private Validate() {
    FhirContext context = FhirContext.forR4();
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            new CommonCodeSystemsTerminologyService(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new SnapshotGeneratingValidationSupport(context));
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    // Only extensions the validator can resolve: careteam defines none of its own.
    module.setAnyExtensionsAllowed(false);
    validator = context.newValidator();
    validator.registerValidatorModule(module);
  }

  private JsonObject validate(Path path) {
    JsonObject out = new JsonObject();
    out.addProperty("file", path.toString());
    JsonArray issues = new JsonArray();
    int errors = 0;
    int warnings = 0;
    try {
      String text = Files.readString(path, StandardCharsets.UTF_8);
      ValidationResult result = validator.validateWithResult(text);
      for (SingleValidationMessage message : result.getMessages()) {
        ResultSeverityEnum severity = message.getSeverity();
        if (severity == ResultSeverityEnum.ERROR || severity == ResultSeverityEnum.FATAL) {
          errors++;
        } else if (severity == ResultSeverityEnum.WARNING) {
          warnings++;
        }
        JsonObject issue = new JsonObject();
        issue.addProperty("severity", severity.getCode());
        issue.addProperty("location", message.getLocationString());
        issue.addProperty("messageId", message.getMessageId());
        issue.addProperty("message", message.getMessage());
        issues.add(issue);
      }
    } catch (IOException | RuntimeException e) {
      errors++;
      JsonObject issue = new JsonObject();
      issue.addProperty("severity", "fatal");
      issue.addProperty("location", "");
      issue.addProperty("messageId", "VALIDATOR_EXCEPTION");
      issue.addProperty("message", e.getClass().getSimpleName() + ": " + e.getMessage());
      issues.add(issue);
    }
    out.addProperty("errors", errors);
    out.addProperty("warnings", warnings);
    out.add("issues", issues);
    return out;
  }

  private static List<Path> expand(String argument) throws IOException {
    Path path = Path.of(argument);
    List<Path> files = new ArrayList<>();
    if (Files.isDirectory(path)) {
      try (Stream<Path> walk = Files.walk(path)) {
        walk.filter(p -> p.toString().endsWith(".json")).sorted().forEach(files::add);
      }
    } else {
      files.add(path);
    }
    return files;
  }

  public static void main(String[] args) throws IOException {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    if (args.length == 0) {
      System.err.println("usage: Validate --stdin | FILE_OR_DIR ...");
      System.exit(2);
    }
    Validate self = new Validate();
    if (args.length == 1 && args[0].equals("--stdin")) {
      BufferedReader in =
          new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isBlank()) {
          continue;
        }
        out.println(self.validate(Path.of(line.strip())));
        out.flush();
      }
      return;
    }
    boolean failed = false;
    for (String argument : args) {
      for (Path file : expand(argument)) {
        JsonObject result = self.validate(file);
        failed |= result.get("errors").getAsInt() > 0;
        out.println(result);
      }
    }
    System.exit(failed ? 1 : 0);
  }
}
