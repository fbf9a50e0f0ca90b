import XCTest
@testable import UMTrainCLI

final class UMTrainCLIPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
