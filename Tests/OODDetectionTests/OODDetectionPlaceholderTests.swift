import XCTest
@testable import OODDetection

final class OODDetectionPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
